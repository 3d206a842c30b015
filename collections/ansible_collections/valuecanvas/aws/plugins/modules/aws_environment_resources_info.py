#!/usr/bin/python
"""What exists for one environment, across every service the platform provisions.

Used by teardown's final check ("nothing tagged for the environment is left") and by the
roles' molecule verify steps.
"""

from __future__ import annotations

DOCUMENTATION = r"""
module: aws_environment_resources_info
short_description: List the resources one environment owns, by kind
description:
  - Looks in EC2 (VPCs, subnets, gateways, route tables, security groups, addresses),
    EKS, RDS, ElastiCache, ELBv2, ACM, ECR, CloudWatch Logs and alarms, SNS, Secrets
    Manager and IAM for what carries the tag Environment=<environment> or the name
    prefix. What is scheduled for deletion but not gone is listed apart.
options:
  environment:
    description: The Environment tag's value.
    type: str
    required: true
  name_prefix:
    description: The prefix of the environment's resource names (for what takes no tags).
    type: str
    required: true
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

RETURN = r"""
resources:
  description: Kind to list of identifiers; kinds with nothing left are omitted.
  returned: always
  type: dict
pending_deletion:
  description: What is being deleted but not gone yet - secrets within their recovery window, a Redis group still deleting.
  returned: always
  type: list
"""

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

# EC2 kinds found by the Environment tag: (list call, result key, id field, kind).
EC2_TAGGED = [
    ("describe_subnets", "Subnets", "SubnetId", "subnet"),
    ("describe_internet_gateways", "InternetGateways", "InternetGatewayId", "internet_gateway"),
    ("describe_route_tables", "RouteTables", "RouteTableId", "route_table"),
    ("describe_security_groups", "SecurityGroups", "GroupId", "security_group"),
]
# Kinds found by their name's prefix: (service, list call, result key, name field, kind).
NAMED = [
    ("rds", "describe_db_subnet_groups", "DBSubnetGroups", "DBSubnetGroupName", "rds_subnet_group"),
    ("rds", "describe_db_parameter_groups", "DBParameterGroups", "DBParameterGroupName",
     "rds_parameter_group"),
    ("elasticache", "describe_cache_subnet_groups", "CacheSubnetGroups", "CacheSubnetGroupName",
     "elasticache_subnet_group"),
    ("elbv2", "describe_load_balancers", "LoadBalancers", "LoadBalancerName", "load_balancer"),
    ("elbv2", "describe_target_groups", "TargetGroups", "TargetGroupName", "target_group"),
]  # fmt: skip


def tags_of(items):
    return {item["Key"]: item["Value"] for item in items or []}


def every(client, operation, key, **kwargs):
    """Every item of a list or describe call, across all its pages (a check that reads only
    the first page would miss what is past it on a large account)."""
    if client.can_paginate(operation):
        for page in client.get_paginator(operation).paginate(**kwargs):
            yield from page.get(key, [])
    else:  # the API returns everything at once (for example the OIDC providers)
        yield from getattr(client, operation)(**kwargs).get(key, [])


def main():
    module = AnsibleAWSModule(
        argument_spec={
            "environment": {"type": "str", "required": True},
            "name_prefix": {"type": "str", "required": True},
        },
        supports_check_mode=True,
    )
    env, prefix = module.params["environment"], module.params["name_prefix"]
    found = {}
    pending = []

    def add(kind, ident):
        found.setdefault(kind, []).append(ident)

    try:
        ec2 = module.client("ec2")
        tag_filter = [{"Name": "tag:Environment", "Values": [env]}]
        for vpc in every(ec2, "describe_vpcs", "Vpcs", Filters=tag_filter):
            add("vpc", vpc["VpcId"])
            vpc_filter = [{"Name": "vpc-id", "Values": [vpc["VpcId"]]}]
            for eni in every(
                ec2, "describe_network_interfaces", "NetworkInterfaces", Filters=vpc_filter
            ):
                add("network_interface", eni["NetworkInterfaceId"])
        for call, key, id_field, kind in EC2_TAGGED:
            for item in every(ec2, call, key, Filters=tag_filter):
                add(kind, item[id_field])
        for nat in every(ec2, "describe_nat_gateways", "NatGateways", Filter=tag_filter):
            if nat["State"] not in ("deleted", "deleting", "failed"):
                add("nat_gateway", nat["NatGatewayId"])
        for address in every(ec2, "describe_addresses", "Addresses", Filters=tag_filter):
            add("elastic_ip", address.get("AllocationId", address.get("PublicIp")))

        eks = module.client("eks")
        for name in every(eks, "list_clusters", "clusters"):
            cluster = eks.describe_cluster(name=name)["cluster"]
            if cluster.get("tags", {}).get("Environment") == env:
                add("eks_cluster", name)

        rds = module.client("rds")
        for db in every(rds, "describe_db_instances", "DBInstances"):
            if tags_of(db.get("TagList")).get("Environment") == env:
                add("rds_instance", db["DBInstanceIdentifier"])

        cache = module.client("elasticache")
        for group in every(cache, "describe_replication_groups", "ReplicationGroups"):
            if group["ReplicationGroupId"].startswith(prefix):
                if group.get("Status") == "deleting":
                    pending.append("elasticache:" + group["ReplicationGroupId"])
                else:
                    add("elasticache_replication_group", group["ReplicationGroupId"])
        clients = {"rds": rds, "elasticache": cache}
        for service, call, key, name_field, kind in NAMED:
            if service not in clients:
                clients[service] = module.client(service)
            for item in every(clients[service], call, key):
                if item[name_field].startswith(prefix):
                    add(kind, item[name_field])

        acm = module.client("acm")
        for cert in every(acm, "list_certificates", "CertificateSummaryList"):
            tags = tags_of(
                acm.list_tags_for_certificate(CertificateArn=cert["CertificateArn"]).get("Tags")
            )
            if tags.get("Environment") == env:
                add("certificate", cert["CertificateArn"])

        ecr = module.client("ecr")
        for repo in every(ecr, "describe_repositories", "repositories"):
            if repo["repositoryName"].startswith(prefix + "/"):
                add("ecr_repository", repo["repositoryName"])

        logs = module.client("logs")
        for group in every(logs, "describe_log_groups", "logGroups"):
            if group["logGroupName"].startswith((f"/valuecanvas/{env}/", f"/aws/eks/{prefix}")):
                add("log_group", group["logGroupName"])
        cloudwatch = module.client("cloudwatch")
        for alarm in every(cloudwatch, "describe_alarms", "MetricAlarms", AlarmNamePrefix=prefix):
            add("alarm", alarm["AlarmName"])
        sns = module.client("sns")
        for topic in every(sns, "list_topics", "Topics"):
            if topic["TopicArn"].rsplit(":", 1)[-1].startswith(prefix):
                add("sns_topic", topic["TopicArn"])

        secrets = module.client("secretsmanager")
        for secret in every(secrets, "list_secrets", "SecretList", IncludePlannedDeletion=True):
            if not secret["Name"].startswith(f"valuecanvas/{env}/"):
                continue
            if secret.get("DeletedDate"):
                pending.append("secret:" + secret["Name"])
            else:
                add("secret", secret["Name"])

        iam = module.client("iam")
        for role in every(iam, "list_roles", "Roles", PathPrefix=f"/valuecanvas/{env}/"):
            add("iam_role", role["RoleName"])
        for policy in every(iam, "list_policies", "Policies", Scope="Local",
                            PathPrefix=f"/valuecanvas/{env}/"):  # fmt: skip
            add("iam_policy", policy["PolicyName"])
        for provider in every(iam, "list_open_id_connect_providers", "OpenIDConnectProviderList"):
            tags = tags_of(
                iam.list_open_id_connect_provider_tags(
                    OpenIDConnectProviderArn=provider["Arn"]
                ).get("Tags")
            )
            if tags.get("Environment") == env:
                add("oidc_provider", provider["Arn"])
    except Exception as error:
        module.fail_json_aws(error, msg="could not list the environment's resources")
    module.exit_json(
        changed=False,
        resources={kind: sorted(ids) for kind, ids in found.items()},
        pending_deletion=sorted(pending),
    )


if __name__ == "__main__":
    main()
