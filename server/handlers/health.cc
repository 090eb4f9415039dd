#include "handlers/health.h"

#include <ctime>

#include "api/response_codec.h"
#include "api/status_to_http.h"

namespace hotswap::server {

HttpResponse handle_health(const HandlerContext&) {
  return {200, "application/json", to_json(HealthStatus{"ok"}), {}, {}};
}

HttpResponse handle_ready(const HandlerContext& context) {
  const Phase phase = context.state->phase();
  HttpResponse response{phase == Phase::kReady ? 200 : 503, "application/json", to_json(HealthStatus{phase_name(phase)}),
                        {}, {}};
  if (phase != Phase::kReady) response.headers.emplace_back("Retry-After", std::to_string(context.config->retry_after_s));
  return response;
}

HttpResponse handle_metrics(const HandlerContext& context) {
  const Engine* engine = context.state->engine();
  std::optional<EngineStats> stats;
  if (engine) stats = engine->stats();
  ServerGauges gauges;
  gauges.ready = context.state->phase() == Phase::kReady;
  gauges.draining = context.state->phase() == Phase::kDraining;
  gauges.open_connections = context.state->connections.open();
  gauges.active_generations = context.state->active_generations.load();
  if (engine) {
    const AdapterStats adapters = engine->adapter_stats();
    gauges.adapters_resident = adapters.resident;
    gauges.adapter_loads_total = adapters.loads_total;
  }
  return {200, "text/plain; version=0.0.4; charset=utf-8", context.metrics->render(stats, gauges), {}, {}};
}

HttpResponse handle_models(const HandlerContext& context) {
  const Engine* engine = context.state->engine();
  if (!engine) return error_response(api_error_from_status(Status::unavailable("the model is still loading")),
                                     context.config->retry_after_s);
  static const int64_t kStarted = static_cast<int64_t>(std::time(nullptr));
  const std::string& id = context.config->served_model_name;
  const ModelInfo& model = engine->model_info();
  ModelList list;
  list.data.push_back({id, kStarted, model.id, std::nullopt, model.max_position_embeddings});
  // Every uploaded adapter is a model too (vLLM style): `model: "<adapter>"` selects it.
  for (const AdapterInfo& adapter : engine->list_adapters())
    list.data.push_back({adapter.name, adapter.created, model.id, id, model.max_position_embeddings});
  return {200, "application/json", to_json(list), {}, {}};
}

}  // namespace hotswap::server
