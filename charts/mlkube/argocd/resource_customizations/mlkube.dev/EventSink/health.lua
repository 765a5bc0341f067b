-- Argo CD health for mlkube.dev/EventSink (docs/deploy-argocd.md). Runs with argocd-cm's closed
-- libraries (no string module): only base, table and the `..` operator. An EventSink is a
-- destination: healthy when resolved and usable (Ready); one that answered 410 (SinkGone)
-- or cannot be used (a missing signing Secret or Service) is Stalled; failing sends are retried
-- (Reconciling), so they are Progressing, as kstatus says.
local hs = {}
local status = obj.status
local function condition(kind)
  if status ~= nil and status.conditions ~= nil then
    for _, c in ipairs(status.conditions) do
      if c.type == kind then
        return c
      end
    end
  end
  return nil
end
-- The first non-empty text (arguments may be nil, so not ipairs).
local function text(...)
  local args = {...}
  for i = 1, select("#", ...) do
    if args[i] ~= nil and args[i] ~= "" then
      return args[i]
    end
  end
  return ""
end
if status == nil or status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to resolve the sink"
  return hs
end
local generation = obj.metadata.generation
if status.observedGeneration ~= nil and generation ~= nil and status.observedGeneration ~= generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. generation
  return hs
end
local ready = condition("Ready")
for _, kind in ipairs({"Stalled", "Degraded"}) do
  local c = condition(kind)
  if c ~= nil and c.status == "True" then
    hs.status = "Degraded"
    hs.message = text(c.message, status.message, c.reason)
    return hs
  end
end
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = text(ready.message, status.message, "Ready")
  return hs
end
local reconciling = condition("Reconciling")
hs.status = "Progressing"
hs.message = text(reconciling and reconciling.message, ready and ready.message, status.message, "Waiting for the operator to resolve the sink")
return hs
