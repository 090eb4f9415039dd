#include "scheduler/sequence.h"

namespace hotswap {

Sequence::Sequence(uint64_t id_, GenerateRequest request_, std::shared_ptr<TokenStream> stream_,
                   SequenceAttention attention_, const Tokenizer& tokenizer, std::vector<int32_t> eos_ids)
    : id(id_),
      request(std::move(request_)),
      stream(std::move(stream_)),
      attention(std::move(attention_)),
      tokens(request.prompt_ids),
      num_prompt_tokens(static_cast<int>(request.prompt_ids.size())),
      // Unseeded requests still sample reproducibly within a run: the id seeds them.
      sampler(request.sampling, 0x9e3779b97f4a7c15ull ^ id_),
      stop(request.stop, std::move(eos_ids)),
      decoder(tokenizer, /*skip_special_tokens=*/true) {}

}  // namespace hotswap
