#!/usr/bin/python
"""How to reach an EKS cluster's API: its endpoint, its CA, and a bearer token from STS
(what `aws eks get-token` prints)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: eks_access
short_description: The endpoint, CA and a bearer token of an EKS cluster's Kubernetes API
description:
  - Describes the cluster (its endpoint and CA; exists is false when there is none), and
    presigns an STS GetCallerIdentity request for the cluster (the x-k8s-aws-id header), as
    aws-iam-authenticator and `aws eks get-token` do, returned as an EKS token
    (k8s-aws-v1.<base64url>). The token is only signed here; the API server checks it with
    STS. The token lives 15 minutes (EKS's limit). It is returned as is (a module's
    no_log values would be masked in its result too), so call it with no_log.
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
exists:
  description: Whether the cluster exists.
  returned: always
  type: bool
endpoint:
  description: The API endpoint (empty when the cluster does not exist).
  returned: always
  type: str
certificate_authority:
  description: The cluster's CA, base64 (empty when the cluster does not exist).
  returned: always
  type: str
token:
  description: The bearer token (empty when the cluster does not exist); call the module with no_log.
  returned: always
  type: str
"""

import base64

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

TOKEN_PREFIX = "k8s-aws-v1."  # noqa: S105 - the token format's prefix, not a secret
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
    name = module.params["cluster_name"]
    eks = module.client("eks")
    try:
        cluster = eks.describe_cluster(name=name)["cluster"]
    except eks.exceptions.ResourceNotFoundException:
        module.exit_json(
            changed=False, exists=False, endpoint="", certificate_authority="", token=""
        )
    url = presign(module.client("sts"), name)
    token = TOKEN_PREFIX + base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")
    module.exit_json(
        changed=False,
        exists=True,
        endpoint=cluster.get("endpoint", ""),
        certificate_authority=(cluster.get("certificateAuthority") or {}).get("data", ""),
        token=token,
    )


if __name__ == "__main__":
    main()
