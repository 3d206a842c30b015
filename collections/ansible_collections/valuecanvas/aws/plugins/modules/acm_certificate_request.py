#!/usr/bin/python
"""Request (or delete) an ACM certificate validated through DNS; community.aws's
acm_certificate only imports certificates one already has."""

from __future__ import annotations

DOCUMENTATION = r"""
module: acm_certificate_request
short_description: Request an ACM certificate with DNS validation, or delete it
description:
  - Finds the certificate by its Name tag and domain; requests one when there is none.
    Returns the DNS records that validate it. Deleting it fails while a load balancer
    still uses it, so delete listeners first.
options:
  name:
    description: The Name tag that identifies the certificate.
    type: str
    required: true
  domain_name:
    description: The certificate's domain.
    type: str
    required: true
  subject_alternative_names:
    description: Other names on the certificate.
    type: list
    elements: str
    default: []
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
  - valuecanvas.aws.resource
"""

RETURN = r"""
certificate:
  description: arn, domain_name, status and validation_records (name, type, value).
  returned: when present
  type: dict
"""

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule


def find(client, name, domain):
    paginator = client.get_paginator("list_certificates")
    for page in paginator.paginate(
        CertificateStatuses=[
            "PENDING_VALIDATION",
            "ISSUED",
            "INACTIVE",
            "EXPIRED",
            "VALIDATION_TIMED_OUT",
            "FAILED",
        ]
    ):
        for item in page["CertificateSummaryList"]:
            if item["DomainName"] != domain:
                continue
            tags = client.list_tags_for_certificate(CertificateArn=item["CertificateArn"]).get(
                "Tags", []
            )
            if {"Key": "Name", "Value": name} in tags:
                return item["CertificateArn"]
    return None


def describe(client, arn):
    cert = client.describe_certificate(CertificateArn=arn)["Certificate"]
    records = [
        option["ResourceRecord"]
        for option in cert.get("DomainValidationOptions", [])
        if "ResourceRecord" in option
    ]
    return {
        "arn": arn,
        "domain_name": cert["DomainName"],
        "subject_alternative_names": cert.get("SubjectAlternativeNames", []),
        "status": cert.get("Status", ""),
        "validation_records": [
            {"name": r["Name"], "type": r["Type"], "value": r["Value"]} for r in records
        ],
    }


def main():
    module = AnsibleAWSModule(
        argument_spec={
            "name": {"type": "str", "required": True},
            "domain_name": {"type": "str", "required": True},
            "subject_alternative_names": {"type": "list", "elements": "str", "default": []},
            "tags": {"type": "dict", "default": {}},
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
        },
        supports_check_mode=True,
    )
    params = module.params
    client = module.client("acm")
    try:
        arn = find(client, params["name"], params["domain_name"])
        if params["state"] == "absent":
            if arn and not module.check_mode:
                client.delete_certificate(CertificateArn=arn)
            module.exit_json(changed=bool(arn))
        if arn:
            module.exit_json(changed=False, certificate=describe(client, arn))
        if module.check_mode:
            module.exit_json(
                changed=True,
                certificate={
                    "arn": "",
                    "domain_name": params["domain_name"],
                    "status": "would be requested",
                },
            )
        tags = {**params["tags"], "Name": params["name"]}
        request = {
            "DomainName": params["domain_name"],
            "ValidationMethod": "DNS",
            "Tags": [{"Key": key, "Value": str(value)} for key, value in sorted(tags.items())],
            "IdempotencyToken": params["name"].replace("-", "")[:32],
        }
        if params["subject_alternative_names"]:
            request["SubjectAlternativeNames"] = [
                params["domain_name"],
                *params["subject_alternative_names"],
            ]
        arn = client.request_certificate(**request)["CertificateArn"]
        module.exit_json(changed=True, certificate=describe(client, arn))
    except Exception as error:
        module.fail_json_aws(
            error, msg=f"could not manage the certificate for {params['domain_name']}"
        )


if __name__ == "__main__":
    main()
