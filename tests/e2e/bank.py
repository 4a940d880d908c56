"""The bank-transfer workload used to check that replica readers only ever
see whole transactions: 1000 accounts of 100 each, transfers that move money
between two accounts (the total never changes) and bump a version counter,
and readers that check the total in a loop."""

SETUP_SQL = ("CREATE TABLE acct(id INTEGER PRIMARY KEY, bal INT, pad BLOB);"
             "INSERT INTO acct SELECT value, 100, randomblob(400) FROM generate_series(1, 1000);"
             "CREATE TABLE ver(v INT); INSERT INTO ver VALUES (0);")
TOTAL = 100000

# argv: db path, seconds. Prints "reads N bad N errors N versions N" last.
READER = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], timeout=30)
deadline = time.monotonic() + float(sys.argv[2])
reads = bad = errors = 0
seen = set()
while time.monotonic() < deadline:
    try:
        total, version = db.execute("SELECT sum(bal), max(v) FROM acct, ver").fetchone()
        db.execute("PRAGMA quick_check").fetchall()
    except sqlite3.Error as e:
        errors += 1
        print("error", e, flush=True)
        continue
    reads += 1
    if total != %d:
        bad += 1
        print("bad", total, flush=True)
    seen.add(version)
print("reads", reads, "bad", bad, "errors", errors, "versions", len(seen), flush=True)
""" % TOTAL

# argv: db path, seconds.
WRITER = """
import random, sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=30)
deadline = time.monotonic() + float(sys.argv[2])
rng = random.Random(7)
while time.monotonic() < deadline:
    a, b = rng.randint(1, 1000), rng.randint(1, 1000)
    db.execute("BEGIN")
    db.execute("UPDATE acct SET bal = bal - 7 WHERE id = ?", (a,))
    db.execute("UPDATE acct SET bal = bal + 7 WHERE id = ?", (b,))
    db.execute("UPDATE ver SET v = v + 1")
    db.execute("COMMIT")
"""


def reader_stats(output):
    """The reader's final counters; fails if it did not finish."""
    last = output.strip().splitlines()[-1].split()
    return dict(zip(last[0::2], map(int, last[1::2])))
