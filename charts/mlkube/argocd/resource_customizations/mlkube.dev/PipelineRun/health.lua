-- Argo CD health for mlkube.dev/PipelineRun (docs/deploy-argocd.md). Runs with argocd-cm's
-- closed libraries (no string module): only base, table and the `..` operator.
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
  hs.message = "Waiting for the operator to start the run"
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
  -- Cancelled is final and did not produce every output (as a cancelled BatchJob).
  hs.status = "Degraded"
elseif stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = text(stalled.message, status.message, stalled.reason)
  return hs
else
  hs.status = "Progressing"
end
local progress = ""
if status.progress ~= nil then
  progress = " " .. status.progress
end
hs.message = phase .. progress .. ": " .. text(status.message, "no details yet")
return hs
