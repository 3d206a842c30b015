{{/*
A service's workload: ServiceAccount, ConfigMap, Deployment and Service.
Security is not a setting: every pod runs as the image's user (10001), non-root, with a
read-only root filesystem, no privilege escalation, no capabilities, the RuntimeDefault
seccomp profile and no service-account token; /tmp is the only writable path (an emptyDir).
*/}}

{{- define "common.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "common.containerSecurityContext" -}}
runAsNonRoot: true
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
privileged: false
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "common.serviceAccount" -}}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ include "common.name" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "common.labels" . | nindent 4 }}
  annotations:
    # IRSA: the role only this account may assume; it may read this service's secrets only.
    # External Secrets uses it (a token requested for this account); the pods mount none.
    eks.amazonaws.com/role-arn: {{ include "common.roleArn" (dict "context" . "account" .Values.name) }}
automountServiceAccountToken: false
{{- end -}}

{{- define "common.configMap" -}}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "common.name" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "common.labels" . | nindent 4 }}
data:
  ENVIRONMENT: {{ .Values.environment | quote }}
  HOST: "0.0.0.0"
  PORT: {{ .Values.port | quote }}
  LOG_LEVEL: {{ .Values.logLevel | quote }}
  # The other services, by their Kubernetes Service (same namespace) on the catalogue port.
  SERVICE_URL_TEMPLATE: "http://{name}:{port}"
  {{- range $key, $value := .Values.env }}
  {{ $key }}: {{ $value | quote }}
  {{- end }}
{{- end -}}

{{/* The pod template of the Deployment, or of the gateway's Rollout. */}}
{{- define "common.podTemplate" -}}
metadata:
  labels:
    {{- include "common.labels" . | nindent 4 }}
    {{- range .Values.calls }}
    # The NetworkPolicy of {{ . }} admits pods with this label (the catalogue's calls).
    calls.valuecanvas.io/{{ . }}: "true"
    {{- end }}
  annotations:
    # A changed setting rolls the pods.
    checksum/config: {{ include "common.configMap" . | sha256sum }}
spec:
  serviceAccountName: {{ include "common.name" . }}
  automountServiceAccountToken: false
  enableServiceLinks: false
  terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
  securityContext:
    {{- include "common.podSecurityContext" . | nindent 4 }}
  topologySpreadConstraints:
    - topologyKey: topology.kubernetes.io/zone
      maxSkew: {{ .Values.topologySpread.maxSkew }}
      whenUnsatisfiable: {{ .Values.topologySpread.zones }}
      labelSelector:
        matchLabels:
          {{- include "common.selectorLabels" . | nindent 10 }}
    - topologyKey: kubernetes.io/hostname
      maxSkew: {{ .Values.topologySpread.maxSkew }}
      whenUnsatisfiable: {{ .Values.topologySpread.nodes }}
      labelSelector:
        matchLabels:
          {{- include "common.selectorLabels" . | nindent 10 }}
  containers:
    - name: {{ include "common.name" . }}
      image: {{ include "common.image" (dict "context" . "repository" .Values.image) }}
      imagePullPolicy: IfNotPresent
      args: [serve, {{ .Values.name }}]
      ports:
        - name: http
          containerPort: {{ .Values.port }}
          protocol: TCP
      envFrom:
        - configMapRef:
            name: {{ include "common.name" . }}
        {{- if .Values.secrets }}
        - secretRef:
            name: {{ include "common.name" . }}
        {{- end }}
      startupProbe:
        httpGet: {path: /healthz, port: http}
        periodSeconds: {{ .Values.probes.startup.periodSeconds }}
        failureThreshold: {{ .Values.probes.startup.failureThreshold }}
        timeoutSeconds: {{ .Values.probes.startup.timeoutSeconds }}
      livenessProbe:
        httpGet: {path: /healthz, port: http}
        periodSeconds: {{ .Values.probes.liveness.periodSeconds }}
        failureThreshold: {{ .Values.probes.liveness.failureThreshold }}
        timeoutSeconds: {{ .Values.probes.liveness.timeoutSeconds }}
      readinessProbe:
        httpGet: {path: /readyz, port: http}
        periodSeconds: {{ .Values.probes.readiness.periodSeconds }}
        failureThreshold: {{ .Values.probes.readiness.failureThreshold }}
        timeoutSeconds: {{ .Values.probes.readiness.timeoutSeconds }}
      lifecycle:
        # Time for the load balancer and the endpoints to stop sending before shutdown.
        preStop:
          exec:
            command: [sleep, {{ .Values.preStopSleepSeconds | quote }}]
      resources:
        {{- toYaml (.Values.resources | default (index .Values.resourceClasses .Values.autoscaling)) | nindent 8 }}
      securityContext:
        {{- include "common.containerSecurityContext" . | nindent 8 }}
      volumeMounts:
        - name: tmp
          mountPath: /tmp
  volumes:
    - name: tmp
      emptyDir:
        sizeLimit: {{ .Values.tmpSizeLimit }}
{{- end -}}

{{- define "common.deployment" -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "common.name" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "common.labels" . | nindent 4 }}
spec:
  # No replicas: the HorizontalPodAutoscaler owns the count.
  revisionHistoryLimit: 5
  selector:
    matchLabels:
      {{- include "common.selectorLabels" . | nindent 6 }}
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxSurge: 25%
      maxUnavailable: 0
  template:
    {{- include "common.podTemplate" . | nindent 4 }}
{{- end -}}

{{/*
The blue-green deployment (Argo Rollouts), for a service with blueGreen.enabled (the
gateway): a new version starts behind the preview Service; the pre-promotion analysis
(common.analysisTemplate) must pass before the active Service, and so the load balancer,
switches to it. The old pods stay for scaleDownDelaySeconds, for a quick abort.
*/}}
{{- define "common.rollout" -}}
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata:
  name: {{ include "common.name" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "common.labels" . | nindent 4 }}
spec:
  # No replicas: the HorizontalPodAutoscaler owns the count.
  revisionHistoryLimit: 5
  selector:
    matchLabels:
      {{- include "common.selectorLabels" . | nindent 6 }}
  template:
    {{- include "common.podTemplate" . | nindent 4 }}
  strategy:
    blueGreen:
      activeService: {{ include "common.name" . }}
      previewService: {{ include "common.name" . }}-preview
      autoPromotionEnabled: {{ .Values.blueGreen.autoPromotionEnabled }}
      scaleDownDelaySeconds: {{ .Values.blueGreen.scaleDownDelaySeconds }}
      prePromotionAnalysis:
        templates:
          - templateName: {{ include "common.name" . }}-pre-promotion
        args:
          - name: preview-service
            value: {{ include "common.name" . }}-preview
          - name: preview-hash
            valueFrom:
              podTemplateHashValue: Latest
{{- end -}}

{{/* The preview Service: the new version before promotion (the analysis calls it). */}}
{{- define "common.previewService" -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "common.name" . }}-preview
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "common.labels" . | nindent 4 }}
    valuecanvas.io/role: preview
spec:
  type: ClusterIP
  selector:
    {{- include "common.selectorLabels" . | nindent 4 }}
  ports:
    - name: http
      port: {{ .Values.port }}
      targetPort: http
      protocol: TCP
{{- end -}}

{{/*
The pre-promotion analysis: the preview answers /readyz ("ready": its database and Redis
answer) every interval, and its pods' share of 5xx answers, from Prometheus, stays under
blueGreen.analysis.errorRateMax. Either failing aborts the rollout; the active version
keeps serving.
*/}}
{{- define "common.analysisTemplate" -}}
{{- $analysis := .Values.blueGreen.analysis -}}
{{- $selector := printf "namespace=\"%s\", service=\"%s\", rollouts_pod_template_hash=\"{{args.preview-hash}}\"" .Release.Namespace .Values.name -}}
apiVersion: argoproj.io/v1alpha1
kind: AnalysisTemplate
metadata:
  name: {{ include "common.name" . }}-pre-promotion
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "common.labels" . | nindent 4 }}
spec:
  args:
    - name: preview-service
    - name: preview-hash
  metrics:
    - name: readyz
      interval: {{ $analysis.interval }}
      count: {{ $analysis.count }}
      failureLimit: 0
      successCondition: result == "ready"
      provider:
        web:
          url: http://{{ "{{args.preview-service}}" }}.{{ .Release.Namespace }}.svc.cluster.local:{{ .Values.port }}/readyz
          jsonPath: "{$.status}"
          timeoutSeconds: 5
    - name: error-rate
      interval: {{ $analysis.interval }}
      count: {{ $analysis.count }}
      failureLimit: 0
      # No answers yet gives NaN (0/0): not a failure; readyz above covers a dead preview.
      successCondition: len(result) == 0 || isNaN(result[0]) || result[0] <= {{ $analysis.errorRateMax }}
      provider:
        prometheus:
          address: {{ .Values.monitoring.prometheusUrl }}
          query: >-
            sum(rate(http_requests_total{ {{- $selector }}, status=~"5.."}[{{ $analysis.window }}]))
            / sum(rate(http_requests_total{ {{- $selector -}} }[{{ $analysis.window }}]))
{{- end -}}

{{- define "common.k8sService" -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "common.name" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "common.labels" . | nindent 4 }}
spec:
  type: ClusterIP
  selector:
    {{- include "common.selectorLabels" . | nindent 4 }}
  ports:
    - name: http
      port: {{ .Values.port }}
      targetPort: http
      protocol: TCP
{{- end -}}
