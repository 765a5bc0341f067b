-- Argo CD health for mlkube.dev/BatchJob (docs/deploy-argocd.md). Runs with argocd-cm's closed
-- libraries (no string module): only base, table and the `..` operator.
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
  hs.message = "Waiting for the operator to plan the job"
  return hs
end
local generation = obj.metadata.generation
if status.observedGeneration ~= nil and generation ~= nil and status.observedGeneration ~= generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. generation
  return hs
end
local phase = text(status.phase, "Pending")
local stalled = condition("Stalled")
if phase == "Succeeded" then
  hs.status = "Healthy"
elseif phase == "Failed" or phase == "Cancelled" then
  -- Cancelled is final and produced no complete output (as Argo CD treats a canceled AnsibleJob).
  hs.status = "Degraded"
elseif phase == "Suspended" then
  hs.status = "Suspended"
elseif stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = text(stalled.message, status.message, stalled.reason)
  return hs
else
  hs.status = "Progressing"
end
hs.message = phase .. ": " .. text(status.message, "no details yet")
return hs
