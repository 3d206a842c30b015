#!/usr/bin/python
"""A bearer token for an EKS cluster's API, from STS (what `aws eks get-token` prints)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: eks_token
short_description: A bearer token for an EKS cluster's Kubernetes API
description:
  - Presigns an STS GetCallerIdentity request for the cluster (the x-k8s-aws-id header),
    as aws-iam-authenticator and `aws eks get-token` do, and returns it as an EKS token
    (k8s-aws-v1.<base64url>). Nothing is sent to AWS; the API server checks the signature
    with STS. The token lives 15 minutes (EKS's limit); it is never logged.
options:
  cluster_name:
    description: The EKS cluster's name.
    type: str
    required: true
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

RETURN = r"""
token:
  description: The bearer token (no_log).
  returned: always
  type: str
"""

import base64

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

TOKEN_PREFIX = "k8s-aws-v1."
CLUSTER_HEADER = "x-k8s-aws-id"
LIFETIME_SECONDS = 60  # the presigned URL's own expiry; EKS accepts the token 15 minutes


def presign(client, cluster_name):
    """The presigned GetCallerIdentity URL, signed with the cluster's name in a header."""
    client.meta.events.register("before-sign.sts.GetCallerIdentity", _header_adder(cluster_name))
    return client.generate_presigned_url(
        "get_caller_identity", Params={}, ExpiresIn=LIFETIME_SECONDS, HttpMethod="GET"
    )


def _header_adder(cluster_name):
    def add(request, **_):
        request.headers[CLUSTER_HEADER] = cluster_name

    return add


def main():
    module = AnsibleAWSModule(
        argument_spec={"cluster_name": {"type": "str", "required": True}},
        supports_check_mode=True,
    )
    client = module.client("sts")
    url = presign(client, module.params["cluster_name"])
    token = TOKEN_PREFIX + base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")
    module.no_log_values.add(token)
    module.exit_json(changed=False, token=token)


if __name__ == "__main__":
    main()
