// See shell_words.h.
#include "sidecar/shell_words.h"

namespace litefs {

Result<std::vector<std::string>> SplitShellWords(std::string_view s) {
  std::vector<std::string> words;
  std::string word;
  bool in_word = false;
  for (size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == ' ' || c == '\t' || c == '\n') {
      if (in_word) words.push_back(std::move(word));
      word.clear();
      in_word = false;
      continue;
    }
    in_word = true;
    if (c == '\\') {
      if (++i == s.size()) return Status::Error("trailing backslash in command: " + std::string(s));
      word.push_back(s[i]);
    } else if (c == '\'') {
      size_t end = s.find('\'', i + 1);
      if (end == std::string_view::npos) return Status::Error("unterminated ' in command: " + std::string(s));
      word.append(s.substr(i + 1, end - i - 1));
      i = end;
    } else if (c == '"') {
      for (++i;; ++i) {
        if (i >= s.size()) return Status::Error("unterminated \" in command: " + std::string(s));
        if (s[i] == '"') break;
        if (s[i] == '\\' && i + 1 < s.size() &&
            (s[i + 1] == '"' || s[i + 1] == '\\' || s[i + 1] == '$' || s[i + 1] == '`')) {
          ++i;
        }
        word.push_back(s[i]);
      }
    } else {
      word.push_back(c);
    }
  }
  if (in_word) words.push_back(std::move(word));
  return words;
}

}  // namespace litefs
