#!/usr/bin/python
"""An EKS managed node group whose desired size belongs to the cluster autoscaler.

community.aws.eks_nodegroup resets the desired size on every run, undoing the
autoscaler's work; this module sets it at creation only, keeps min and max in step, and
fails (instead of recreating) when a setting EKS cannot change in place differs.
"""

from __future__ import annotations

DOCUMENTATION = r"""
module: eks_managed_nodegroup
short_description: Create, adjust or delete an EKS managed node group
description:
  - Creates the node group when absent, with the given desired size. When present, brings
    min size, max size (and the desired size, only if it falls outside them), labels,
    tags and the update policy to the wanted values. Instance types, subnets, node role,
    disk size and capacity type are fixed at creation; a difference fails with a message.
options:
  name:
    description: The node group's name.
    type: str
    required: true
  cluster_name:
    description: The cluster's name.
    type: str
    required: true
  node_role:
    description: The nodes' IAM role ARN.
    type: str
  subnets:
    description: The nodes' subnets.
    type: list
    elements: str
    default: []
  instance_types:
    description: The instance types.
    type: list
    elements: str
    default: [t3.medium]
  capacity_type:
    description: ON_DEMAND or SPOT.
    type: str
    choices: [ON_DEMAND, SPOT]
    default: ON_DEMAND
  disk_size:
    description: Each node's disk in GiB.
    type: int
    default: 50
  min_size:
    description: Fewest nodes.
    type: int
    default: 1
  max_size:
    description: Most nodes.
    type: int
    default: 3
  desired_size:
    description: Nodes at creation (afterwards the autoscaler's; only clamped into min..max).
    type: int
    default: 1
  max_unavailable:
    description: Nodes replaced at once during an update.
    type: int
    default: 1
  labels:
    description: Kubernetes labels on the nodes.
    type: dict
    default: {}
  wait_timeout:
    description: Seconds to wait for the node group to be active (or gone).
    type: int
    default: 1800
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
  - valuecanvas.aws.resource
"""

RETURN = r"""
nodegroup:
  description: name, status, scaling (min, max, desired), instance types, labels.
  returned: when present
  type: dict
"""

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.valuecanvas.aws.plugins.module_utils.aws_wait import wait


def describe(client, cluster, name):
    try:
        return client.describe_nodegroup(clusterName=cluster, nodegroupName=name)["nodegroup"]
    except client.exceptions.ResourceNotFoundException:
        return None


def summary(group):
    return {
        "name": group["nodegroupName"],
        "status": group.get("status", ""),
        "scaling": group.get("scalingConfig", {}),
        "instance_types": group.get("instanceTypes", []),
        "capacity_type": group.get("capacityType", ""),
        "labels": group.get("labels", {}),
        "node_role": group.get("nodeRole", ""),
    }


def wait_for(module, client, cluster, name, gone=False):
    wait(module, client, "nodegroup_deleted" if gone else "nodegroup_active",
         what=f"node group {name}", clusterName=cluster, nodegroupName=name)  # fmt: skip


def main():
    module = AnsibleAWSModule(
        argument_spec={
            "name": {"type": "str", "required": True},
            "cluster_name": {"type": "str", "required": True},
            "node_role": {"type": "str"},
            "subnets": {"type": "list", "elements": "str", "default": []},
            "instance_types": {"type": "list", "elements": "str", "default": ["t3.medium"]},
            "capacity_type": {
                "type": "str",
                "choices": ["ON_DEMAND", "SPOT"],
                "default": "ON_DEMAND",
            },
            "disk_size": {"type": "int", "default": 50},
            "min_size": {"type": "int", "default": 1},
            "max_size": {"type": "int", "default": 3},
            "desired_size": {"type": "int", "default": 1},
            "max_unavailable": {"type": "int", "default": 1},
            "labels": {"type": "dict", "default": {}},
            "tags": {"type": "dict", "default": {}},
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
            "wait_timeout": {"type": "int", "default": 1800},
        },
        required_if=[("state", "present", ("node_role", "subnets"))],
        supports_check_mode=True,
    )
    p = module.params
    if not p["min_size"] <= p["desired_size"] <= p["max_size"]:
        module.fail_json(
            msg=f"desired_size: must be between min_size ({p['min_size']}) and max_size ({p['max_size']})"
        )
    client = module.client("eks")
    cluster, name = p["cluster_name"], p["name"]
    try:
        group = describe(client, cluster, name)
        if p["state"] == "absent":
            if group is None:
                module.exit_json(changed=False)
            if not module.check_mode:
                if group.get("status") != "DELETING":
                    client.delete_nodegroup(clusterName=cluster, nodegroupName=name)
                wait_for(module, client, cluster, name, gone=True)
            module.exit_json(changed=True)
        if group is None:
            if module.check_mode:
                module.exit_json(
                    changed=True, nodegroup={"name": name, "status": "would be created"}
                )
            client.create_nodegroup(
                clusterName=cluster,
                nodegroupName=name,
                nodeRole=p["node_role"],
                subnets=p["subnets"],
                instanceTypes=p["instance_types"],
                capacityType=p["capacity_type"],
                diskSize=p["disk_size"],
                scalingConfig={
                    "minSize": p["min_size"],
                    "maxSize": p["max_size"],
                    "desiredSize": p["desired_size"],
                },
                updateConfig={"maxUnavailable": p["max_unavailable"]},
                labels=p["labels"],
                tags={key: str(value) for key, value in p["tags"].items()},
            )
            wait_for(module, client, cluster, name)
            module.exit_json(changed=True, nodegroup=summary(describe(client, cluster, name)))
        fixed = {
            "instance_types": (
                sorted(group.get("instanceTypes") or []),
                sorted(p["instance_types"]),
            ),
            "subnets": (sorted(group.get("subnets") or []), sorted(p["subnets"])),
            "node_role": (group.get("nodeRole"), p["node_role"]),
            "capacity_type": (group.get("capacityType", p["capacity_type"]), p["capacity_type"]),
        }
        for key, (have, want) in fixed.items():
            if have != want:
                module.fail_json(
                    msg=f"{key}: fixed at creation; node group {name} has {have}, wanted {want}. Make a new node group to change it."
                )
        update = {}
        scaling = dict(group.get("scalingConfig") or {})
        wanted_scaling = {
            "minSize": p["min_size"],
            "maxSize": p["max_size"],
            "desiredSize": min(
                max(scaling.get("desiredSize", p["desired_size"]), p["min_size"]), p["max_size"]
            ),
        }
        if scaling != wanted_scaling:
            update["scalingConfig"] = wanted_scaling
        # Compared only when reported (the emulator drops it at creation; AWS always reports it).
        reported = group.get("updateConfig")
        if reported is not None and reported.get("maxUnavailable") != p["max_unavailable"]:
            update["updateConfig"] = {"maxUnavailable": p["max_unavailable"]}
        have_labels = group.get("labels") or {}
        add = {
            key: str(value)
            for key, value in p["labels"].items()
            if have_labels.get(key) != str(value)
        }
        remove = [key for key in have_labels if key not in p["labels"]]
        if add or remove:
            update["labels"] = {
                **({"addOrUpdateLabels": add} if add else {}),
                **({"removeLabels": remove} if remove else {}),
            }
        have_tags = group.get("tags") or {}
        new_tags = {
            key: str(value) for key, value in p["tags"].items() if have_tags.get(key) != str(value)
        }
        changed = bool(update or new_tags)
        if changed and not module.check_mode:
            if update:
                client.update_nodegroup_config(clusterName=cluster, nodegroupName=name, **update)
                wait_for(module, client, cluster, name)
            if new_tags:
                client.tag_resource(resourceArn=group["nodegroupArn"], tags=new_tags)
            group = describe(client, cluster, name)
    except Exception as error:
        module.fail_json_aws(error, msg=f"could not manage node group {name}")
    module.exit_json(
        changed=changed,
        nodegroup=summary(group),
        changes=sorted(update) + (["tags"] if new_tags else []),
    )


if __name__ == "__main__":
    main()
