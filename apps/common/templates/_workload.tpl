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
  {{- range $key, $value := .Values.env }}
  {{ $key }}: {{ $value | quote }}
  {{- end }}
{{- end -}}

{{- define "common.deployment" -}}
{{- $class := index .Values.autoscalingClasses .Values.autoscaling -}}
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
    metadata:
      labels:
        {{- include "common.labels" . | nindent 8 }}
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
        {{- include "common.podSecurityContext" . | nindent 8 }}
      topologySpreadConstraints:
        - topologyKey: topology.kubernetes.io/zone
          maxSkew: {{ .Values.topologySpread.maxSkew }}
          whenUnsatisfiable: {{ .Values.topologySpread.zones }}
          labelSelector:
            matchLabels:
              {{- include "common.selectorLabels" . | nindent 14 }}
        - topologyKey: kubernetes.io/hostname
          maxSkew: {{ .Values.topologySpread.maxSkew }}
          whenUnsatisfiable: {{ .Values.topologySpread.nodes }}
          labelSelector:
            matchLabels:
              {{- include "common.selectorLabels" . | nindent 14 }}
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
            {{- toYaml (.Values.resources | default (index .Values.resourceClasses .Values.autoscaling)) | nindent 12 }}
          securityContext:
            {{- include "common.containerSecurityContext" . | nindent 12 }}
          volumeMounts:
            - name: tmp
              mountPath: /tmp
      volumes:
        - name: tmp
          emptyDir:
            sizeLimit: {{ .Values.tmpSizeLimit }}
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
