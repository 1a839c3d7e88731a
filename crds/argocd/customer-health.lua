-- Argo CD health check for clawhost.dev/Customer. Install under
-- resource.customizations.health.clawhost.dev_Customer in argocd-cm.
-- Reads the kstatus conditions the operator writes: Stalled → Degraded, Ready → Healthy,
-- deliberate stops (suspended, awaiting payment) → Suspended, anything in flight → Progressing.
local hs = {}
if obj.status == nil or obj.status.conditions == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to report status"
  return hs
end
local generation = obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to act on the latest spec"
  return hs
end
local ready, stalled, reconciling
for _, condition in ipairs(obj.status.conditions) do
  if condition.type == "Ready" then ready = condition end
  if condition.type == "Stalled" then stalled = condition end
  if condition.type == "Reconciling" then reconciling = condition end
end
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = stalled.reason .. ": " .. (stalled.message or "")
  return hs
end
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message or "Ready"
  return hs
end
if reconciling ~= nil and reconciling.status == "True" then
  hs.status = "Progressing"
  hs.message = reconciling.message or "Reconciling"
  return hs
end
local phase = obj.status.phase
if phase == "Suspended" or phase == "AwaitingPayment" then
  hs.status = "Suspended"
elseif phase == "Destroyed" then
  hs.status = "Degraded"
else
  hs.status = "Progressing"
end
hs.message = (ready ~= nil and ready.message) or phase or "Unknown"
return hs
