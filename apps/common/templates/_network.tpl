{{/*
The service's NetworkPolicy. The namespace denies everything by default (the platform
chart); this policy opens exactly the service's edges:
  in:  from pods that call it (they carry calls.valuecanvas.io/<name>, set from the
       catalogue's calls), from Prometheus to /metrics, and for the public service from
       the load balancer's subnets;
  out: to the services it calls, DNS, the database and Redis subnets (when it reads their
       secrets), and for internetEgress the internet on 443 (not the VPC, not the
       instance metadata endpoint).
*/}}

{{- define "common.dnsEgress" -}}
- to:
    - namespaceSelector:
        matchLabels:
          kubernetes.io/metadata.name: kube-system
      podSelector:
        matchLabels:
          k8s-app: kube-dns
  ports:
    - {protocol: UDP, port: 53}
    - {protocol: TCP, port: 53}
{{- end -}}

{{- define "common.databaseEgress" -}}
- to:
    {{- range .Values.database.cidrs }}
    - ipBlock: {cidr: {{ . }}}
    {{- end }}
  ports:
    - {protocol: TCP, port: {{ .Values.database.port }}}
{{- end -}}

{{- define "common.networkPolicy" -}}
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ include "common.name" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "common.labels" . | nindent 4 }}
spec:
  podSelector:
    matchLabels:
      {{- include "common.selectorLabels" . | nindent 6 }}
  policyTypes: [Ingress, Egress]
  ingress:
    - from:
        - podSelector:
            matchLabels:
              calls.valuecanvas.io/{{ .Values.name }}: "true"
      ports:
        - {protocol: TCP, port: http}
    - from:
        - namespaceSelector:
            matchLabels:
              kubernetes.io/metadata.name: {{ .Values.monitoring.namespace }}
          podSelector:
            matchLabels:
              {{- toYaml .Values.monitoring.prometheusLabels | nindent 14 }}
      ports:
        - {protocol: TCP, port: http}
    {{- if .Values.blueGreen.enabled }}
    # The pre-promotion analysis: the Argo Rollouts controller calls the preview's /readyz.
    - from:
        - namespaceSelector:
            matchLabels:
              kubernetes.io/metadata.name: {{ .Values.blueGreen.controllerNamespace }}
          podSelector:
            matchLabels:
              app.kubernetes.io/name: argo-rollouts
      ports:
        - {protocol: TCP, port: http}
    {{- end }}
    {{- if .Values.public }}
    - from:
        {{- range .Values.loadBalancer.cidrs }}
        - ipBlock: {cidr: {{ . }}}
        {{- end }}
      ports:
        - {protocol: TCP, port: http}
    {{- end }}
  egress:
    {{- include "common.dnsEgress" . | nindent 4 }}
    {{- if .Values.calls }}
    - to:
        - podSelector:
            matchExpressions:
              - key: app.kubernetes.io/name
                operator: In
                values: {{ toJson .Values.calls }}
      ports:
        - {protocol: TCP, port: http}
    {{- end }}
    {{- if has "database-app" .Values.secrets }}
    {{- include "common.databaseEgress" . | nindent 4 }}
    {{- end }}
    {{- if has "redis" .Values.secrets }}
    - to:
        {{- range .Values.redis.cidrs }}
        - ipBlock: {cidr: {{ . }}}
        {{- end }}
      ports:
        - {protocol: TCP, port: {{ .Values.redis.port }}}
    {{- end }}
    {{- if .Values.internetEgress }}
    - to:
        - ipBlock:
            cidr: 0.0.0.0/0
            except: [10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 169.254.0.0/16, 100.64.0.0/10]
      ports:
        - {protocol: TCP, port: 443}
    {{- end }}
{{- end -}}
