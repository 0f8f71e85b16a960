-- Argo CD health of a dlq.orion.io ReprocessRequest, from its phase and the kstatus
-- conditions the operator writes (Ready, Reconciling, Stalled), so Argo CD and Flux agree.
-- A Cancelled request (spec.suspend: true) is Suspended, as Argo CD shows a suspended Job:
-- it is what the user asked for, yet the replay did not happen.
-- Only Lua's base and table libraries are used: Argo CD opens no others for a script in
-- argocd-cm.
local function condition(kind)
  if obj.status == nil or obj.status.conditions == nil then
    return nil
  end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == kind then
      return c
    end
  end
  return nil
end

local function said(c, otherwise)
  if c ~= nil and c.message ~= nil and c.message ~= "" then
    return c.message
  end
  if c ~= nil and c.reason ~= nil then
    return c.reason
  end
  return otherwise
end

local hs = {}
if obj.metadata.deletionTimestamp ~= nil then
  hs.status = "Progressing"
  hs.message = "Being deleted"
  return hs
end
if obj.status == nil or obj.status.observedGeneration == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to see this ReprocessRequest"
  return hs
end
if obj.metadata.generation ~= nil and obj.status.observedGeneration ~= obj.metadata.generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to see generation " .. obj.metadata.generation
  return hs
end
local phase = obj.status.phase
local stalled = condition("Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = said(stalled, "Failed")
  return hs
end
if phase == "Failed" then
  hs.status = "Degraded"
  hs.message = obj.status.message or "Failed"
  return hs
end
if phase == "Cancelled" then
  hs.status = "Suspended"
  hs.message = said(condition("Ready"), "Cancelled: spec.suspend is true")
  return hs
end
if phase == "Succeeded" then
  hs.status = "Healthy"
  hs.message = said(condition("Ready"), obj.status.message or "Succeeded")
  return hs
end
local reconciling = condition("Reconciling")
if reconciling ~= nil and reconciling.status == "True" then
  hs.status = "Progressing"
  hs.message = said(reconciling, "")
  return hs
end
if phase == "Pending" or phase == "Running" then
  hs.status = "Progressing"
  hs.message = obj.status.message or phase
  return hs
end
local ready = condition("Ready")
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = said(ready, "")
  return hs
end
hs.status = "Progressing"
hs.message = said(ready, "Waiting for the operator's Ready condition")
return hs
