-- Argo CD health check for monitoring.inference.dev/InferenceMonitoring, from the status the
-- operator writes: status.observedGeneration and the Ready condition (type, status, reason).
-- Plain Lua 5.1 so that Argo CD's interpreter runs it; tests/tools/argocd_flux_health.rs runs it with lua5.4.
local hs = {}

-- Ready=False reasons that need someone to act: Degraded. Every other Ready=False reason
-- (Progressing, NoTargets, TargetsDown, PrometheusUnreachable, ApiError, ExporterNotReady) may clear on its own,
-- e.g. while the inference pods roll out: Progressing.
local needs_action = {
  InvalidSpec = true,
  Conflict = true,
  Forbidden = true,
  ApiUnavailable = true,
  EngineUndetermined = true,
  NotSelected = true,
  MetricsEndpointMissing = true,
  CoreMetricAbsent = true,
  DuplicateTargets = true,
  NoGpuNodes = true,
}

local function describe(condition)
  local text = condition.reason or "Unknown"
  if condition.message ~= nil and condition.message ~= "" then
    text = text .. ": " .. condition.message
  end
  return text
end

local status = obj.status
local generation = obj.metadata.generation
if status == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the infmon operator to reconcile"
  return hs
end
if generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the infmon operator to observe generation " .. generation
  return hs
end

local ready = nil
if status.conditions ~= nil then
  for _, condition in ipairs(status.conditions) do
    if condition.type == "Ready" then
      ready = condition
    end
  end
end

if ready == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the Ready condition"
elseif ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready)
elseif ready.status == "False" and needs_action[ready.reason] then
  hs.status = "Degraded"
  hs.message = describe(ready)
else
  hs.status = "Progressing"
  hs.message = describe(ready)
end
return hs
