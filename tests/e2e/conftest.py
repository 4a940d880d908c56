import pytest

from litefs_cluster import Cluster, LITEFS, LIBLITEFS


def pytest_configure(config):
    for f in (LITEFS, LIBLITEFS):
        if not f.exists():
            raise pytest.UsageError(f"{f} is missing: build first (./scripts/build)")


@pytest.fixture
def cluster(tmp_path):
    c = Cluster(tmp_path).start()
    yield c
    c.stop()
