#!/usr/bin/python
"""An RDS DB parameter group with the given parameters set.

amazon.aws.rds_instance_param_group cannot create a group against the local emulator (it
reads an empty answer as an existing group), so the platform uses this one everywhere.
"""

from __future__ import annotations

DOCUMENTATION = r"""
module: rds_parameter_group
short_description: Create or delete an RDS DB parameter group and set its parameters
description:
  - Finds the group by name; creates it when there is none, then sets the parameters that
    differ. The family is fixed at creation. Static parameters apply at the next reboot.
options:
  name:
    description: The group's name.
    type: str
    required: true
  family:
    description: The parameter group family, such as postgres16 (fixed at creation).
    type: str
    required: true
  description:
    description: The group's description.
    type: str
    default: ValueCanvas
  parameters:
    description: Parameter name to value. Static parameters apply at the next reboot.
    type: dict
    default: {}
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
  - valuecanvas.aws.resource
"""

RETURN = r"""
changed_parameters:
  description: The parameters this run set.
  returned: always
  type: list
"""

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule


def find(client, name):
    try:
        groups = client.describe_db_parameter_groups(DBParameterGroupName=name)["DBParameterGroups"]
    except client.exceptions.DBParameterGroupNotFoundFault:
        return None
    return groups[0] if groups else None


def current_values(client, name):
    values = {}
    for page in client.get_paginator("describe_db_parameters").paginate(DBParameterGroupName=name):
        for parameter in page["Parameters"]:
            values[parameter["ParameterName"]] = parameter
    return values


def main():
    module = AnsibleAWSModule(
        argument_spec={
            "name": {"type": "str", "required": True},
            "family": {"type": "str", "required": True},
            "description": {"type": "str", "default": "ValueCanvas"},
            "parameters": {"type": "dict", "default": {}},
            "tags": {"type": "dict", "default": {}},
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
        },
        supports_check_mode=True,
    )
    p = module.params
    client = module.client("rds")
    try:
        group = find(client, p["name"])
        if p["state"] == "absent":
            if group and not module.check_mode:
                client.delete_db_parameter_group(DBParameterGroupName=p["name"])
            module.exit_json(changed=bool(group), changed_parameters=[])
        changed = False
        if group is None:
            changed = True
            if module.check_mode:
                module.exit_json(changed=True, changed_parameters=sorted(p["parameters"]))
            client.create_db_parameter_group(
                DBParameterGroupName=p["name"],
                DBParameterGroupFamily=p["family"],
                Description=p["description"],
                Tags=[
                    {"Key": key, "Value": str(value)} for key, value in sorted(p["tags"].items())
                ],
            )
        elif group["DBParameterGroupFamily"] != p["family"]:
            module.fail_json(
                msg=f"family: fixed at creation; {p['name']} is {group['DBParameterGroupFamily']}. Use a new group name."
            )
        have = current_values(client, p["name"])
        modify = [
            {
                "ParameterName": key,
                "ParameterValue": str(value),
                # Dynamic parameters now; static ones (and unknown apply types) at the next reboot.
                "ApplyMethod": "immediate"
                if have.get(key, {}).get("ApplyType") == "dynamic"
                else "pending-reboot",
            }
            for key, value in sorted(p["parameters"].items())
            if str(have.get(key, {}).get("ParameterValue")) != str(value)
        ]
        if modify and not module.check_mode:
            for start in range(0, len(modify), 20):  # the API takes 20 at a time
                client.modify_db_parameter_group(
                    DBParameterGroupName=p["name"], Parameters=modify[start : start + 20]
                )
    except Exception as error:
        module.fail_json_aws(error, msg=f"could not manage parameter group {p['name']}")
    module.exit_json(
        changed=changed or bool(modify),
        changed_parameters=[item["ParameterName"] for item in modify],
    )


if __name__ == "__main__":
    main()
