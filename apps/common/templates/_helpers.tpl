{{/*
Names and labels. Every object of a service is named after it (the catalogue's name), and
carries the recommended labels; selectors use only name and instance, which never change.
*/}}

{{- define "common.name" -}}
{{- .Values.name -}}
{{- end -}}

{{- define "common.selectorLabels" -}}
app.kubernetes.io/name: {{ .Values.name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "common.labels" -}}
{{ include "common.selectorLabels" . }}
app.kubernetes.io/part-of: valuecanvas
app.kubernetes.io/component: {{ .Values.autoscaling | default "platform" }}
app.kubernetes.io/version: {{ .Values.imageTag | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
valuecanvas.io/environment: {{ .Values.environment }}
{{- end -}}

{{/* The image: the environment's ECR registry, the service's repository, the tag, and the
digest when one is given (then the tag is informative and the digest is what runs). */}}
{{- define "common.image" -}}
{{- $repository := .repository -}}
{{- with .context -}}
{{- $repository = printf "%s/%s/%s" .Values.registry .Values.aws.namePrefix $repository -}}
{{- if .Values.imageDigest -}}
{{- printf "%s:%s@%s" $repository .Values.imageTag .Values.imageDigest -}}
{{- else -}}
{{- printf "%s:%s" $repository .Values.imageTag -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The IAM role of a service account: aws_iam's <path><namePrefix>-svc-<account>, whose
prefix the cluster secret carries (aws_service_role_arn_prefix). */}}
{{- define "common.roleArn" -}}
{{- printf "%s%s" .context.Values.aws.roleArnPrefix .account -}}
{{- end -}}

{{/* Checks the schema cannot express; each message names the key. */}}
{{- define "common.checks" -}}
{{- $class := index .Values.autoscalingClasses .Values.autoscaling | default dict -}}
{{- if not $class -}}
{{- fail (printf "autoscalingClasses.%s: not defined (the catalogue's autoscaling class of %s)" .Values.autoscaling .Values.name) -}}
{{- end -}}
{{- if gt (int $class.minReplicas) (int $class.maxReplicas) -}}
{{- fail (printf "autoscalingClasses.%s.minReplicas (%d) is above autoscalingClasses.%s.maxReplicas (%d)" .Values.autoscaling (int $class.minReplicas) .Values.autoscaling (int $class.maxReplicas)) -}}
{{- end -}}
{{- $known := include "common.secretEnvironment" . | fromYaml -}}
{{- range $secret := .Values.secrets -}}
{{- if not (hasKey $known $secret) -}}
{{- fail (printf "secrets: %s is not a secret the charts know (known: %s)" $secret (keys $known | sortAlpha | join ", ")) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
What each of the aws_secrets role's secrets becomes in a service's environment: the
properties read from Secrets Manager, and the variables written from them (External
Secrets templates, so "{{ .x }}" is written escaped). The URLs join the secret's
credentials with the environment's endpoints.
*/}}
{{- define "common.secretEnvironment" -}}
jwt:
  properties: {jwt_secret: JWT_SECRET}
  env: {JWT_SECRET: '{{ "{{ .jwt_secret }}" }}'}
internal-token:
  properties: {internal_token_secret: INTERNAL_TOKEN_SECRET}
  env: {INTERNAL_TOKEN_SECRET: '{{ "{{ .internal_token_secret }}" }}'}
database:
  properties: {database_username: username, database_password: password}
  env:
    MIGRATION_DATABASE_URL: '{{ printf "postgresql://{{ .database_username | urlquery }}:{{ .database_password | urlquery }}@%s:%d/%s?sslmode=%s" .Values.database.host (int .Values.database.port) .Values.database.name .Values.database.sslmode }}'
database-app:
  properties: {app_database_username: username, app_database_password: password}
  env:
    DATABASE_URL: '{{ printf "postgresql://{{ .app_database_username | urlquery }}:{{ .app_database_password | urlquery }}@%s:%d/%s?sslmode=%s" .Values.database.host (int .Values.database.port) .Values.database.name .Values.database.sslmode }}'
redis:
  properties: {redis_auth_token: auth_token}
  env:
    REDIS_URL: '{{ printf "%s://:{{ .redis_auth_token | urlquery }}@%s:%d/0" (ternary "rediss" "redis" .Values.redis.tls) .Values.redis.host (int .Values.redis.port) }}'
together:
  properties: {together_api_key: TOGETHER_API_KEY}
  env: {TOGETHER_API_KEY: '{{ "{{ .together_api_key }}" }}'}
openai:
  properties: {openai_api_key: OPENAI_API_KEY}
  env: {OPENAI_API_KEY: '{{ "{{ .openai_api_key }}" }}'}
{{- end -}}
