-- Argo CD health for mlkube.dev/Environment (docs/deploy-argocd.md). Runs with argocd-cm's
-- closed libraries (no string module): only base, table and the `..` operator. A build that
-- cannot proceed (no registry configured) is Stalled=True while still Pending: Degraded.
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
if status == nil or (status.phase == nil and status.conditions == nil) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to resolve or build the Environment"
  return hs
end
local generation = obj.metadata.generation
if status.observedGeneration ~= nil and generation ~= nil and status.observedGeneration ~= generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. generation
  return hs
end
local ready = condition("Ready")
local stalled = condition("Stalled")
if status.phase == "Failed" or (stalled ~= nil and stalled.status == "True") then
  hs.status = "Degraded"
  hs.message = text(status.message, stalled and stalled.message, ready and ready.message, "Environment failed")
  return hs
end
if ready ~= nil and ready.status == "True" and (status.phase == nil or status.phase == "Ready") then
  hs.status = "Healthy"
  hs.message = text(status.message, ready.message, "Environment ready")
  return hs
end
hs.status = "Progressing"
hs.message = text(ready and ready.message, status.message, "Phase " .. text(status.phase, "Pending"))
return hs
