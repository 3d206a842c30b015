{{/*
Autoscaling: the catalogue's class chooses the numbers (autoscalingClasses in the
environment's values; production has the spec's). Scale-up is quick, scale-down waits for
a stable window and then sheds a bounded share per period. A PodDisruptionBudget keeps all
but one pod through voluntary disruptions wherever the minimum is 2 or more.
*/}}

{{- define "common.hpa" -}}
{{- $class := index .Values.autoscalingClasses .Values.autoscaling -}}
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ include "common.name" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "common.labels" . | nindent 4 }}
spec:
  scaleTargetRef:
    {{- if .Values.blueGreen.enabled }}
    apiVersion: argoproj.io/v1alpha1
    kind: Rollout
    {{- else }}
    apiVersion: apps/v1
    kind: Deployment
    {{- end }}
    name: {{ include "common.name" . }}
  minReplicas: {{ $class.minReplicas }}
  maxReplicas: {{ $class.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ $class.cpu }}
    {{- if $class.memory }}
    - type: Resource
      resource:
        name: memory
        target:
          type: Utilization
          averageUtilization: {{ $class.memory }}
    {{- end }}
  behavior:
    scaleUp:
      stabilizationWindowSeconds: 0
      selectPolicy: Max
      policies:
        - type: Pods
          value: 2
          periodSeconds: 60
        - type: Percent
          value: 100
          periodSeconds: 60
    scaleDown:
      stabilizationWindowSeconds: {{ .Values.scaleDown.stabilizationWindowSeconds }}
      selectPolicy: Min
      policies:
        - type: Percent
          value: {{ .Values.scaleDown.percent }}
          periodSeconds: {{ .Values.scaleDown.periodSeconds }}
{{- end -}}

{{- define "common.pdb" -}}
{{- $class := index .Values.autoscalingClasses .Values.autoscaling -}}
{{- if ge (int $class.minReplicas) 2 -}}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "common.name" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "common.labels" . | nindent 4 }}
spec:
  maxUnavailable: 1
  selector:
    matchLabels:
      {{- include "common.selectorLabels" . | nindent 6 }}
{{- end -}}
{{- end -}}
