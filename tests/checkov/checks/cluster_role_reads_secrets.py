"""A ClusterRole that lets its subjects read Secrets in every namespace.

Checkov's own CKV2_K8S_5 ("No ServiceAccount/Node should be able to read all secrets") reads
the role's `rules.resources` and `rules.verbs` as if it had one rule, so a role whose Secret
rule is one of several passes it. Any one of get, list and watch on Secrets, granted
cluster-wide, reads every Secret.
"""

from checkov.kubernetes.checks.resource.base_rbac_check import BaseRbacK8sCheck, RbacOperation


class ClusterRoleReadsSecrets(BaseRbacK8sCheck):
    def __init__(self) -> None:
        super().__init__(
            name="ClusterRoles should not read Secrets in every namespace",
            id="CKV_INFMON_1",
            supported_entities=["ClusterRole"],
        )
        self.failing_operations = [
            RbacOperation(apigroups=[""], verbs=["get", "list", "watch"], resources=["secrets"]),
        ]


check = ClusterRoleReadsSecrets()
