{{/*
Everything one service's thin chart renders: its templates/all.yaml is
  {{ include "common.service" . }}
*/}}
{{- define "common.service" -}}
{{- include "common.checks" . -}}
{{- $objects := list "common.serviceAccount" "common.configMap" "common.deployment" "common.k8sService" "common.hpa" "common.pdb" "common.networkPolicy" "common.serviceMonitor" -}}
{{- if .Values.blueGreen.enabled -}}
{{- $objects = list "common.serviceAccount" "common.configMap" "common.rollout" "common.k8sService" "common.previewService" "common.analysisTemplate" "common.hpa" "common.pdb" "common.networkPolicy" "common.podMonitor" -}}
{{- end -}}
{{- range $objects }}
{{- $rendered := include . $ -}}
{{- if $rendered }}
---
{{ $rendered }}
{{- end }}
{{- end }}
{{- if .Values.secrets }}
---
{{ include "common.secretStore" (dict "context" .) }}
---
{{ include "common.externalSecret" (dict "context" .) }}
{{- end }}
{{- if .Values.public }}
---
{{ include "common.targetGroupBinding" . }}
{{- end }}
{{- end -}}
