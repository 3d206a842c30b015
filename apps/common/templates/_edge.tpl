{{/*
The public service's entry: the load balancer and its target group are made by Ansible
(the aws_edge role, docs/aws.md); in the cluster the AWS Load Balancer Controller only
registers this service's pod IPs in that target group. Deleting this object, or the
namespace, deregisters the pods and leaves the load balancer alone.
*/}}
{{- define "common.targetGroupBinding" -}}
apiVersion: elbv2.k8s.aws/v1beta1
kind: TargetGroupBinding
metadata:
  name: {{ include "common.name" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "common.labels" . | nindent 4 }}
spec:
  targetGroupARN: {{ .Values.loadBalancer.targetGroupArn }}
  targetType: ip
  serviceRef:
    name: {{ include "common.name" . }}
    port: {{ .Values.port }}
  networking:
    ingress:
      - from:
          - securityGroup:
              groupID: {{ .Values.loadBalancer.securityGroupId }}
        ports:
          - protocol: TCP
            port: {{ .Values.port }}
{{- end -}}
