#!/usr/bin/python
"""An IAM OpenID Connect provider (an EKS cluster's issuer, for service-account roles)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: iam_oidc_provider
short_description: Create or delete an IAM OpenID Connect identity provider
description:
  - Makes the provider for an issuer URL exist (or not), with its client ids, thumbprints
    and tags. Idempotent and check-mode safe.
options:
  url:
    description: The issuer URL (https://...).
    type: str
    required: true
  client_ids:
    description: The audiences; EKS service-account roles use sts.amazonaws.com.
    type: list
    elements: str
    default: [sts.amazonaws.com]
  thumbprints:
    description: SHA-1 thumbprints of the issuer's certificate chain (IAM no longer checks them for EKS issuers, but the API takes them).
    type: list
    elements: str
    default: [9e99a48a9960b14926bb7f3b02e22da2b0ab7280]
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
  - valuecanvas.aws.resource
"""

RETURN = r"""
arn:
  description: The provider's ARN (empty when absent).
  returned: always
  type: str
"""

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule


def find(client, url):
    host_path = url.removeprefix("https://")
    for provider in client.list_open_id_connect_providers()["OpenIDConnectProviderList"]:
        if provider["Arn"].endswith("oidc-provider/" + host_path):
            return provider["Arn"], client.get_open_id_connect_provider(
                OpenIDConnectProviderArn=provider["Arn"]
            )
    return None, None


def main():
    module = AnsibleAWSModule(
        argument_spec={
            "url": {"type": "str", "required": True},
            "client_ids": {"type": "list", "elements": "str", "default": ["sts.amazonaws.com"]},
            "thumbprints": {
                "type": "list",
                "elements": "str",
                "default": ["9e99a48a9960b14926bb7f3b02e22da2b0ab7280"],
            },
            "tags": {"type": "dict", "default": {}},
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
        },
        supports_check_mode=True,
    )
    client = module.client("iam")
    params = module.params
    if not params["url"].startswith("https://"):
        module.fail_json(msg=f"url: an OIDC issuer must be https:// (got {params['url']!r})")
    try:
        arn, provider = find(client, params["url"])
        if params["state"] == "absent":
            if arn and not module.check_mode:
                client.delete_open_id_connect_provider(OpenIDConnectProviderArn=arn)
            module.exit_json(changed=bool(arn), arn="")
        tags = [{"Key": key, "Value": str(value)} for key, value in sorted(params["tags"].items())]
        if arn is None:
            if module.check_mode:
                module.exit_json(changed=True, arn="")
            arn = client.create_open_id_connect_provider(
                Url=params["url"],
                ClientIDList=params["client_ids"],
                ThumbprintList=params["thumbprints"],
                Tags=tags,
            )["OpenIDConnectProviderArn"]
            module.exit_json(changed=True, arn=arn)
        changed = False
        have_clients = set(provider.get("ClientIDList", []))
        for client_id in set(params["client_ids"]) - have_clients:
            changed = True
            if not module.check_mode:
                client.add_client_id_to_open_id_connect_provider(
                    OpenIDConnectProviderArn=arn, ClientID=client_id
                )
        for client_id in have_clients - set(params["client_ids"]):
            changed = True
            if not module.check_mode:
                client.remove_client_id_from_open_id_connect_provider(
                    OpenIDConnectProviderArn=arn, ClientID=client_id
                )
        if sorted(provider.get("ThumbprintList", [])) != sorted(params["thumbprints"]):
            changed = True
            if not module.check_mode:
                client.update_open_id_connect_provider_thumbprint(
                    OpenIDConnectProviderArn=arn, ThumbprintList=params["thumbprints"]
                )
        have_tags = {tag["Key"]: tag["Value"] for tag in provider.get("Tags", [])}
        if any(have_tags.get(key) != str(value) for key, value in params["tags"].items()):
            changed = True
            if not module.check_mode:
                client.tag_open_id_connect_provider(OpenIDConnectProviderArn=arn, Tags=tags)
    except Exception as error:
        module.fail_json_aws(error, msg="could not manage the OIDC provider")
    module.exit_json(changed=changed, arn=arn)


if __name__ == "__main__":
    main()
