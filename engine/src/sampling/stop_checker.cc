#include "sampling/stop_checker.h"

#include <algorithm>
#include <utility>

#include "core/check.h"

namespace hotswap {

StopChecker::StopChecker(const StopConditions& conditions, std::vector<int32_t> eos_ids)
    : max_tokens_(conditions.max_tokens) {
  // 0: a prompt-scoring request that generates nothing (the engine finishes it after the prompt).
  HS_CHECK(conditions.max_tokens >= 0) << "max_tokens " << conditions.max_tokens;
  for (const std::string& s : conditions.stop_strings) {
    if (s.empty()) continue;  // would match before any text: meaningless, so ignored
    stop_strings_.push_back(s);
    max_stop_length_ = std::max(max_stop_length_, s.size());
  }
  if (!conditions.ignore_eos) stop_ids_ = std::move(eos_ids);
  stop_ids_.insert(stop_ids_.end(), conditions.stop_token_ids.begin(), conditions.stop_token_ids.end());
}

StopDecision StopChecker::on_token(int32_t id, std::string_view text_piece) {
  HS_CHECK(!finished_) << "token " << id << " after the sequence finished";
  ++num_tokens_;
  if (is_stop_token(id)) return finish(FinishReason::kStop, held_.size());

  held_.append(text_piece);
  // Only held_ can contain a new match: any earlier start would have been a partial match
  // at the previous token, and the longest partial match is always held back.
  const size_t stop_at = find_stop_string();
  if (stop_at != std::string::npos) return finish(FinishReason::kStop, stop_at);
  if (num_tokens_ >= max_tokens_) return finish(FinishReason::kLength, held_.size());

  const size_t emit_length = held_.size() - partial_match_length();
  StopDecision decision;
  decision.text_to_emit = held_.substr(0, emit_length);
  held_.erase(0, emit_length);
  return decision;
}

std::string StopChecker::flush() { return std::exchange(held_, std::string()); }

bool StopChecker::is_stop_token(int32_t id) const {
  return std::find(stop_ids_.begin(), stop_ids_.end(), id) != stop_ids_.end();
}

size_t StopChecker::find_stop_string() const {
  size_t earliest = std::string::npos;
  for (const std::string& s : stop_strings_) earliest = std::min(earliest, held_.find(s));
  return earliest;
}

size_t StopChecker::partial_match_length() const {
  if (max_stop_length_ == 0) return 0;
  const std::string_view held = held_;
  for (size_t length = std::min(held.size(), max_stop_length_ - 1); length > 0; --length) {
    const std::string_view suffix = held.substr(held.size() - length);
    for (const std::string& s : stop_strings_) {
      if (s.size() > length && std::string_view(s).starts_with(suffix)) return length;
    }
  }
  return 0;
}

StopDecision StopChecker::finish(FinishReason reason, size_t emit_length) {
  StopDecision decision;
  decision.text_to_emit = held_.substr(0, emit_length);
  decision.finish = reason;
  held_.clear();
  finished_ = true;
  return decision;
}

}  // namespace hotswap
