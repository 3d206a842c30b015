#!/usr/bin/python
"""Endpoint access and control-plane logging of an existing EKS cluster.

community.aws.eks_cluster creates the cluster but cannot set these; this module does,
idempotently and in check mode, with boto3 (never the aws CLI).
"""

from __future__ import annotations

DOCUMENTATION = r"""
module: eks_cluster_settings
short_description: Set an EKS cluster's endpoint access and control-plane logging
description:
  - Compares the cluster's endpoint access (private, public, public CIDRs) and its enabled
    control-plane log types with the wanted ones and updates what differs. EKS takes one
    kind of update at a time, so access and logging are separate updates, each waited for.
options:
  name:
    description: The cluster's name.
    type: str
    required: true
  endpoint_private_access:
    description: Whether the API endpoint is reachable from inside the VPC.
    type: bool
    default: true
  endpoint_public_access:
    description: Whether the API endpoint is reachable from the internet (limited by public_access_cidrs).
    type: bool
    default: true
  public_access_cidrs:
    description: The CIDRs allowed to reach the public endpoint.
    type: list
    elements: str
    default: []
  log_types:
    description: The control-plane log types to enable (the others are disabled).
    type: list
    elements: str
    choices: [api, audit, authenticator, controllerManager, scheduler]
    default: [api, audit, authenticator, controllerManager, scheduler]
  wait_timeout:
    description: Seconds to wait for each update.
    type: int
    default: 1800
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

RETURN = r"""
cluster:
  description: The cluster's endpoint access and logging after the change.
  returned: always
  type: dict
"""

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.valuecanvas.aws.plugins.module_utils.aws_wait import wait

ALL_LOG_TYPES = ["api", "audit", "authenticator", "controllerManager", "scheduler"]


def current(client, name):
    cluster = client.describe_cluster(name=name)["cluster"]
    vpc = cluster.get("resourcesVpcConfig", {})
    enabled = sorted(
        kind
        for setup in cluster.get("logging", {}).get("clusterLogging", [])
        if setup.get("enabled")
        for kind in setup.get("types", [])
    )
    return cluster, {
        "endpoint_private_access": bool(vpc.get("endpointPrivateAccess")),
        "endpoint_public_access": bool(vpc.get("endpointPublicAccess")),
        "public_access_cidrs": sorted(vpc.get("publicAccessCidrs") or []),
        "log_types": enabled,
    }


def wait_active(module, client, name):
    wait(module, client, "cluster_active", what=f"cluster {name}", name=name)


def main():
    module = AnsibleAWSModule(
        argument_spec={
            "name": {"type": "str", "required": True},
            "endpoint_private_access": {"type": "bool", "default": True},
            "endpoint_public_access": {"type": "bool", "default": True},
            "public_access_cidrs": {"type": "list", "elements": "str", "default": []},
            "log_types": {
                "type": "list",
                "elements": "str",
                "choices": ALL_LOG_TYPES,
                "default": ALL_LOG_TYPES,
            },
            "wait_timeout": {"type": "int", "default": 1800},
        },
        supports_check_mode=True,
    )
    client = module.client("eks")
    name = module.params["name"]
    params = module.params
    if params["endpoint_public_access"] and not params["public_access_cidrs"]:
        module.fail_json(
            msg="public_access_cidrs: a public endpoint must be limited to listed CIDRs"
        )
    try:
        cluster, have = current(client, name)
    except client.exceptions.ResourceNotFoundException:
        if module.check_mode:  # the cluster would be created earlier in the same run
            module.exit_json(changed=True, cluster={})
        module.fail_json(msg=f"cluster {name} does not exist")
    want = {
        "endpoint_private_access": params["endpoint_private_access"],
        "endpoint_public_access": params["endpoint_public_access"],
        "public_access_cidrs": sorted(params["public_access_cidrs"])
        if params["endpoint_public_access"]
        else have["public_access_cidrs"],
        "log_types": sorted(params["log_types"]),
    }
    access_keys = ("endpoint_private_access", "endpoint_public_access", "public_access_cidrs")
    access_differs = any(have[key] != want[key] for key in access_keys)
    logging_differs = have["log_types"] != want["log_types"]
    if module.check_mode or not (access_differs or logging_differs):
        module.exit_json(
            changed=access_differs or logging_differs,
            cluster=want if access_differs or logging_differs else have,
        )
    try:
        if access_differs:
            vpc = cluster.get("resourcesVpcConfig", {})
            config = {
                "endpointPrivateAccess": want["endpoint_private_access"],
                "endpointPublicAccess": want["endpoint_public_access"],
            }
            # Unchanged, but sent: EKS keeps them either way, and an emulator that
            # replaces the whole block (moto) keeps them too.
            for key in ("subnetIds", "securityGroupIds"):
                if vpc.get(key):
                    config[key] = vpc[key]
            if want["endpoint_public_access"]:
                config["publicAccessCidrs"] = want["public_access_cidrs"]
            client.update_cluster_config(name=name, resourcesVpcConfig=config)
            wait_active(module, client, name)
        if logging_differs:
            client.update_cluster_config(
                name=name,
                logging={
                    "clusterLogging": [
                        {"types": want["log_types"], "enabled": True},
                        {
                            "types": sorted(set(ALL_LOG_TYPES) - set(want["log_types"])),
                            "enabled": False,
                        },
                    ]
                },
            )
            wait_active(module, client, name)
        _, after = current(client, name)
    except Exception as error:  # botocore errors, reported with their message
        module.fail_json_aws(error, msg=f"could not update cluster {name}")
    module.exit_json(changed=True, cluster=after)


if __name__ == "__main__":
    main()
