{{/*
Secrets come from AWS Secrets Manager through the External Secrets Operator; the
repository never renders a Secret. Each service has its own SecretStore, authenticated as
the service's own account (IRSA), so it can read only the secrets the aws_iam role allows
that account: the catalogue's list. The ExternalSecret writes one Secret, named after the
service, holding exactly the variables those secrets become (common.secretEnvironment).
*/}}

{{- define "common.secretStore" -}}
{{- $account := .account | default .context.Values.name -}}
{{- with .context -}}
apiVersion: external-secrets.io/v1
kind: SecretStore
metadata:
  name: {{ $account }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "common.labels" . | nindent 4 }}
  {{- with $.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  provider:
    aws:
      service: SecretsManager
      region: {{ .Values.aws.region }}
      auth:
        jwt:
          serviceAccountRef:
            name: {{ $account }}
{{- end -}}
{{- end -}}

{{- define "common.externalSecret" -}}
{{- $account := .account | default .context.Values.name -}}
{{- $secrets := .secrets | default .context.Values.secrets -}}
{{- with .context -}}
{{- $known := include "common.secretEnvironment" . | fromYaml -}}
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata:
  name: {{ $account }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "common.labels" . | nindent 4 }}
  {{- with $.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  refreshInterval: {{ .Values.externalSecrets.refreshInterval }}
  secretStoreRef:
    kind: SecretStore
    name: {{ $account }}
  target:
    name: {{ $account }}
    creationPolicy: Owner
    deletionPolicy: Retain
    template:
      engineVersion: v2
      type: Opaque
      data:
        {{- range $secret := $secrets }}
        {{- range $variable, $template := (index $known $secret).env }}
        {{ $variable }}: {{ $template | quote }}
        {{- end }}
        {{- end }}
  data:
    {{- range $secret := $secrets }}
    {{- range $key, $property := (index $known $secret).properties }}
    - secretKey: {{ $key }}
      remoteRef:
        key: {{ printf "%s/%s" $.context.Values.aws.secretsPrefix $secret }}
        property: {{ $property }}
    {{- end }}
    {{- end }}
{{- end -}}
{{- end -}}
