#!/usr/bin/python
"""An ElastiCache (Redis) replication group with TLS in transit, an auth token and
encryption at rest: community.aws.elasticache manages only single cache clusters."""

from __future__ import annotations

DOCUMENTATION = r"""
module: elasticache_replication_group
short_description: Create, adjust or delete an ElastiCache Redis replication group
description:
  - Creates the group when absent. When present, brings the settings ElastiCache can
    change in place (description, node type, automatic failover, Multi-AZ, security
    groups, snapshot retention) to the wanted values. Encryption and the subnet group are
    fixed at creation; a difference there fails with a message instead of recreating.
  - The auth token is set only at creation (it cannot be read back); rotate it with
    ElastiCache's token rotation, not by changing this parameter.
options:
  name:
    description: The replication group id.
    type: str
    required: true
  description:
    description: Its description.
    type: str
    default: ValueCanvas Redis
  node_type:
    description: The node type, for example cache.t3.micro.
    type: str
    default: cache.t3.micro
  engine_version:
    description: The Redis engine version.
    type: str
    default: "7.1"
  num_cache_clusters:
    description: Nodes in the group (1 primary plus replicas); automatic failover needs 2 or more.
    type: int
    default: 1
  automatic_failover:
    description: Promote a replica when the primary fails.
    type: bool
    default: false
  multi_az:
    description: Place replicas in other availability zones.
    type: bool
    default: false
  subnet_group:
    description: The cache subnet group's name.
    type: str
    required: true
  security_group_ids:
    description: Security groups of the nodes.
    type: list
    elements: str
    default: []
  transit_encryption:
    description: TLS in transit.
    type: bool
    default: true
  at_rest_encryption:
    description: Encryption at rest.
    type: bool
    default: true
  auth_token:
    description: The AUTH token (16 to 128 characters); requires transit_encryption.
    type: str
    no_log: true
  snapshot_retention_limit:
    description: Days of automatic snapshots (0 disables them).
    type: int
    default: 0
  wait:
    description: Wait for the group to be available (or gone).
    type: bool
    default: true
  wait_timeout:
    description: Seconds to wait.
    type: int
    default: 1800
  wait_for_deletion:
    description: With state=absent, wait until the group is gone (its subnet group can only go then). The emulator never finishes a deletion.
    type: bool
    default: true
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
  - valuecanvas.aws.resource
"""

RETURN = r"""
replication_group:
  description: Id, ARN, status, primary endpoint and the settings, as ElastiCache reports them.
  returned: when present
  type: dict
"""

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.valuecanvas.aws.plugins.module_utils.aws_wait import wait


def describe(client, name):
    try:
        return client.describe_replication_groups(ReplicationGroupId=name)["ReplicationGroups"][0]
    except client.exceptions.ReplicationGroupNotFoundFault:
        return None


def summary(group):
    endpoint = (
        (group.get("NodeGroups") or [{}])[0].get("PrimaryEndpoint")
        or group.get("ConfigurationEndpoint")
        or {}
    )
    return {
        "id": group["ReplicationGroupId"],
        "arn": group.get("ARN", ""),
        "status": group.get("Status", ""),
        "primary_endpoint": endpoint.get("Address", ""),
        "port": endpoint.get("Port", 6379),
        "node_type": group.get("CacheNodeType", ""),
        "member_clusters": group.get("MemberClusters", []),
        "automatic_failover": group.get("AutomaticFailover", "disabled"),
        "multi_az": group.get("MultiAZ", "disabled"),
        "transit_encryption": bool(group.get("TransitEncryptionEnabled")),
        "at_rest_encryption": bool(group.get("AtRestEncryptionEnabled")),
        "auth_token_enabled": bool(group.get("AuthTokenEnabled")),
        "snapshot_retention_limit": group.get("SnapshotRetentionLimit", 0),
    }


def wait_for(module, client, name, gone=False):
    if not module.params["wait"] or (gone and not module.params["wait_for_deletion"]):
        return

    wait(module, client, "replication_group_deleted" if gone else "replication_group_available",
         what=f"replication group {name}", ReplicationGroupId=name)  # fmt: skip


def main():
    module = AnsibleAWSModule(
        argument_spec={
            "name": {"type": "str", "required": True},
            "description": {"type": "str", "default": "ValueCanvas Redis"},
            "node_type": {"type": "str", "default": "cache.t3.micro"},
            "engine_version": {"type": "str", "default": "7.1"},
            "num_cache_clusters": {"type": "int", "default": 1},
            "automatic_failover": {"type": "bool", "default": False},
            "multi_az": {"type": "bool", "default": False},
            "subnet_group": {"type": "str", "required": True},
            "security_group_ids": {"type": "list", "elements": "str", "default": []},
            "transit_encryption": {"type": "bool", "default": True},
            "at_rest_encryption": {"type": "bool", "default": True},
            "auth_token": {"type": "str", "no_log": True},
            "snapshot_retention_limit": {"type": "int", "default": 0},
            "tags": {"type": "dict", "default": {}},
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
            "wait": {"type": "bool", "default": True},
            "wait_timeout": {"type": "int", "default": 1800},
            "wait_for_deletion": {"type": "bool", "default": True},
        },
        supports_check_mode=True,
    )
    params = module.params
    client = module.client("elasticache")
    name = params["name"]
    if params["automatic_failover"] and params["num_cache_clusters"] < 2:
        module.fail_json(msg="num_cache_clusters: automatic failover needs at least 2 nodes")
    if params["auth_token"] and not params["transit_encryption"]:
        module.fail_json(msg="auth_token: an auth token needs transit_encryption")
    try:
        group = describe(client, name)
        if params["state"] == "absent":
            if group is None:
                module.exit_json(changed=False)
            if not module.check_mode:
                if group.get("Status") != "deleting":
                    client.delete_replication_group(
                        ReplicationGroupId=name, RetainPrimaryCluster=False
                    )
                wait_for(module, client, name, gone=True)
            module.exit_json(changed=True)
        if group is None:
            if module.check_mode:
                module.exit_json(
                    changed=True, replication_group={"id": name, "status": "would be created"}
                )
            request = {
                "ReplicationGroupId": name,
                "ReplicationGroupDescription": params["description"],
                "Engine": "redis",
                "EngineVersion": params["engine_version"],
                "CacheNodeType": params["node_type"],
                "NumCacheClusters": params["num_cache_clusters"],
                "AutomaticFailoverEnabled": params["automatic_failover"],
                "MultiAZEnabled": params["multi_az"],
                "CacheSubnetGroupName": params["subnet_group"],
                "SecurityGroupIds": params["security_group_ids"],
                "TransitEncryptionEnabled": params["transit_encryption"],
                "AtRestEncryptionEnabled": params["at_rest_encryption"],
                "SnapshotRetentionLimit": params["snapshot_retention_limit"],
                "Tags": [
                    {"Key": key, "Value": str(value)}
                    for key, value in sorted(params["tags"].items())
                ],
            }
            if params["auth_token"]:
                request["AuthToken"] = params["auth_token"]
            client.create_replication_group(**request)
            wait_for(module, client, name)
            module.exit_json(changed=True, replication_group=summary(describe(client, name)))
        have = summary(group)
        for key in ("transit_encryption", "at_rest_encryption"):
            if have[key] != params[key]:
                module.fail_json(
                    msg=f"{key}: fixed at creation; replication group {name} has {have[key]}. Recreate it to change this."
                )
        changes = {}
        if group.get("Description", params["description"]) != params["description"]:
            changes["ReplicationGroupDescription"] = params["description"]
        if have["node_type"] != params["node_type"]:
            changes["CacheNodeType"] = params["node_type"]
        if (have["automatic_failover"] in ("enabled", "enabling")) != params["automatic_failover"]:
            changes["AutomaticFailoverEnabled"] = params["automatic_failover"]
        if (have["multi_az"] == "enabled") != params["multi_az"]:
            changes["MultiAZEnabled"] = params["multi_az"]
        if have["snapshot_retention_limit"] != params["snapshot_retention_limit"]:
            changes["SnapshotRetentionLimit"] = params["snapshot_retention_limit"]
        have_groups = []
        for cluster_id in have["member_clusters"][:1]:
            try:
                node = client.describe_cache_clusters(CacheClusterId=cluster_id)["CacheClusters"][0]
            except client.exceptions.CacheClusterNotFoundFault:
                continue  # not described (the emulator does not list a group's nodes): left as is
            have_groups = sorted(
                member["SecurityGroupId"] for member in node.get("SecurityGroups", [])
            )
        if (
            params["security_group_ids"]
            and have_groups
            and have_groups != sorted(params["security_group_ids"])
        ):
            changes["SecurityGroupIds"] = params["security_group_ids"]
        if changes and not module.check_mode:
            client.modify_replication_group(
                ReplicationGroupId=name, ApplyImmediately=True, **changes
            )
            wait_for(module, client, name)
            group = describe(client, name)
    except Exception as error:
        module.fail_json_aws(error, msg=f"could not manage replication group {name}")
    module.exit_json(
        changed=bool(changes), replication_group=summary(group), changes=sorted(changes)
    )


if __name__ == "__main__":
    main()
