//! The AWS KMS operations kmsfs serves, as one enum: everything the rest of
//! the code needs to know about an operation (its wire name, the IAM action a
//! key policy must grant, what it does to the store, which role of the
//! console's default policy holds it) is answered here, once, so adding an
//! operation is one variant plus one row in [`Operation::spec`] and the
//! compiler points at every match that must learn about it.

/// What an operation does to the key store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Reads, or computes without changing the store (the cryptographic
    /// calls): repeating it only repeats its answer.
    Reads,
    /// Adds a new resource and changes nothing that exists: repeating it adds
    /// another one, as the client calling again would.
    Creates,
    /// Changes existing state (a key's state, policy, rotation, an alias).
    Changes,
}

/// Who holds an operation in the AWS console's default key policy
/// (`policy::ADMIN_ACTIONS` and `policy::USER_ACTIONS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holder {
    /// Key administrators manage the key but cannot use it.
    Administrators,
    /// Key users use the key for cryptography but cannot manage it.
    Users,
    /// Both roles (DescribeKey).
    Both,
    /// Neither: the operation names no key, so no key policy can grant it
    /// (GenerateRandom, the custom key store operations); AWS leaves it to
    /// IAM policies, kmsfs to authentication alone (docs/KMS.md).
    NoKey,
    /// The parties of a grant (RetireGrant): its retiring principal, its
    /// grantee when the grant allows RetireGrant, or whoever the key policy
    /// allows kms:RetireGrant (no default role holds it).
    GrantParties,
}

impl Holder {
    pub fn includes_administrators(self) -> bool {
        matches!(self, Holder::Administrators | Holder::Both)
    }

    pub fn includes_users(self) -> bool {
        matches!(self, Holder::Users | Holder::Both)
    }
}

/// The facts about one operation.
#[derive(Debug, Clone, Copy)]
pub struct OperationSpec {
    /// The AWS name: `X-Amz-Target: TrentService.<name>`.
    pub name: &'static str,
    /// The IAM actions a key policy must allow (ReEncrypt needs two, one on
    /// each key).
    pub iam_actions: &'static [&'static str],
    pub effect: Effect,
    pub holder: Holder,
}

/// ReEncrypt's IAM action on the source key.
pub(crate) const RE_ENCRYPT_FROM: &str = "kms:ReEncryptFrom";
/// ReEncrypt's IAM action on the destination key.
pub(crate) const RE_ENCRYPT_TO: &str = "kms:ReEncryptTo";

macro_rules! operations {
    ($($variant:ident),+ $(,)?) => {
        /// Every AWS KMS operation kmsfs implements.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Operation {
            $($variant),+
        }

        impl Operation {
            /// Every operation, in the order of the AWS API reference's
            /// families (keys, aliases, rotation, cryptography, policy, import).
            pub const ALL: &'static [Operation] = &[$(Operation::$variant),+];
        }
    };
}

operations![
    CreateKey,
    DescribeKey,
    ListKeys,
    CreateAlias,
    UpdateAlias,
    DeleteAlias,
    ListAliases,
    EnableKey,
    DisableKey,
    ScheduleKeyDeletion,
    CancelKeyDeletion,
    EnableKeyRotation,
    DisableKeyRotation,
    GetKeyRotationStatus,
    RotateKeyOnDemand,
    ListKeyRotations,
    Encrypt,
    Decrypt,
    ReEncrypt,
    GenerateDataKey,
    GenerateDataKeyWithoutPlaintext,
    GetKeyPolicy,
    PutKeyPolicy,
    GetParametersForImport,
    ImportKeyMaterial,
    GetPublicKey,
    Sign,
    Verify,
    GenerateMac,
    VerifyMac,
    GenerateDataKeyPair,
    GenerateDataKeyPairWithoutPlaintext,
    DeriveSharedSecret,
    DeleteImportedKeyMaterial,
    UpdateKeyDescription,
    ListKeyPolicies,
    GetKeyLastUsage,
    TagResource,
    UntagResource,
    ListResourceTags,
    GenerateRandom,
    CreateCustomKeyStore,
    DescribeCustomKeyStores,
    ConnectCustomKeyStore,
    DisconnectCustomKeyStore,
    UpdateCustomKeyStore,
    DeleteCustomKeyStore,
    CreateGrant,
    ListGrants,
    ListRetirableGrants,
    RetireGrant,
    RevokeGrant,
    ReplicateKey,
    UpdatePrimaryRegion,
];

impl Operation {
    pub const fn spec(self) -> OperationSpec {
        use Effect::*;
        use Holder::*;
        const fn op(
            name: &'static str,
            iam_actions: &'static [&'static str],
            effect: Effect,
            holder: Holder,
        ) -> OperationSpec {
            OperationSpec {
                name,
                iam_actions,
                effect,
                holder,
            }
        }
        match self {
            Operation::CreateKey => op("CreateKey", &["kms:CreateKey"], Creates, Administrators),
            Operation::DescribeKey => op("DescribeKey", &["kms:DescribeKey"], Reads, Both),
            Operation::ListKeys => op("ListKeys", &["kms:ListKeys"], Reads, Administrators),
            Operation::CreateAlias => {
                op("CreateAlias", &["kms:CreateAlias"], Changes, Administrators)
            }
            Operation::UpdateAlias => {
                op("UpdateAlias", &["kms:UpdateAlias"], Changes, Administrators)
            }
            Operation::DeleteAlias => {
                op("DeleteAlias", &["kms:DeleteAlias"], Changes, Administrators)
            }
            Operation::ListAliases => {
                op("ListAliases", &["kms:ListAliases"], Reads, Administrators)
            }
            Operation::EnableKey => op("EnableKey", &["kms:EnableKey"], Changes, Administrators),
            Operation::DisableKey => op("DisableKey", &["kms:DisableKey"], Changes, Administrators),
            Operation::ScheduleKeyDeletion => op(
                "ScheduleKeyDeletion",
                &["kms:ScheduleKeyDeletion"],
                Changes,
                Administrators,
            ),
            Operation::CancelKeyDeletion => op(
                "CancelKeyDeletion",
                &["kms:CancelKeyDeletion"],
                Changes,
                Administrators,
            ),
            Operation::EnableKeyRotation => op(
                "EnableKeyRotation",
                &["kms:EnableKeyRotation"],
                Changes,
                Administrators,
            ),
            Operation::DisableKeyRotation => op(
                "DisableKeyRotation",
                &["kms:DisableKeyRotation"],
                Changes,
                Administrators,
            ),
            Operation::GetKeyRotationStatus => op(
                "GetKeyRotationStatus",
                &["kms:GetKeyRotationStatus"],
                Reads,
                Administrators,
            ),
            Operation::RotateKeyOnDemand => op(
                "RotateKeyOnDemand",
                &["kms:RotateKeyOnDemand"],
                Changes,
                Administrators,
            ),
            Operation::ListKeyRotations => op(
                "ListKeyRotations",
                &["kms:ListKeyRotations"],
                Reads,
                Administrators,
            ),
            Operation::Encrypt => op("Encrypt", &["kms:Encrypt"], Reads, Users),
            Operation::Decrypt => op("Decrypt", &["kms:Decrypt"], Reads, Users),
            Operation::ReEncrypt => {
                op("ReEncrypt", &[RE_ENCRYPT_FROM, RE_ENCRYPT_TO], Reads, Users)
            }
            Operation::GenerateDataKey => {
                op("GenerateDataKey", &["kms:GenerateDataKey"], Reads, Users)
            }
            Operation::GenerateDataKeyWithoutPlaintext => op(
                "GenerateDataKeyWithoutPlaintext",
                &["kms:GenerateDataKeyWithoutPlaintext"],
                Reads,
                Users,
            ),
            Operation::GetKeyPolicy => {
                op("GetKeyPolicy", &["kms:GetKeyPolicy"], Reads, Administrators)
            }
            Operation::PutKeyPolicy => op(
                "PutKeyPolicy",
                &["kms:PutKeyPolicy"],
                Changes,
                Administrators,
            ),
            Operation::GetParametersForImport => op(
                "GetParametersForImport",
                &["kms:GetParametersForImport"],
                // A new wrapping key and token replace the pending ones.
                Changes,
                Administrators,
            ),
            Operation::ImportKeyMaterial => op(
                "ImportKeyMaterial",
                &["kms:ImportKeyMaterial"],
                Changes,
                Administrators,
            ),
            // Administrators hold it too, through `kms:Get*`.
            Operation::GetPublicKey => op("GetPublicKey", &["kms:GetPublicKey"], Reads, Both),
            Operation::Sign => op("Sign", &["kms:Sign"], Reads, Users),
            Operation::Verify => op("Verify", &["kms:Verify"], Reads, Users),
            Operation::GenerateMac => op("GenerateMac", &["kms:GenerateMac"], Reads, Users),
            Operation::VerifyMac => op("VerifyMac", &["kms:VerifyMac"], Reads, Users),
            Operation::GenerateDataKeyPair => op(
                "GenerateDataKeyPair",
                &["kms:GenerateDataKeyPair"],
                Reads,
                Users,
            ),
            Operation::GenerateDataKeyPairWithoutPlaintext => op(
                "GenerateDataKeyPairWithoutPlaintext",
                &["kms:GenerateDataKeyPairWithoutPlaintext"],
                Reads,
                Users,
            ),
            Operation::DeriveSharedSecret => op(
                "DeriveSharedSecret",
                &["kms:DeriveSharedSecret"],
                Reads,
                Users,
            ),
            Operation::DeleteImportedKeyMaterial => op(
                "DeleteImportedKeyMaterial",
                &["kms:DeleteImportedKeyMaterial"],
                Changes,
                Administrators,
            ),
            Operation::UpdateKeyDescription => op(
                "UpdateKeyDescription",
                &["kms:UpdateKeyDescription"],
                Changes,
                Administrators,
            ),
            Operation::ListKeyPolicies => op(
                "ListKeyPolicies",
                &["kms:ListKeyPolicies"],
                Reads,
                Administrators,
            ),
            Operation::GetKeyLastUsage => op(
                "GetKeyLastUsage",
                &["kms:GetKeyLastUsage"],
                Reads,
                Administrators,
            ),
            Operation::TagResource => {
                op("TagResource", &["kms:TagResource"], Changes, Administrators)
            }
            Operation::UntagResource => op(
                "UntagResource",
                &["kms:UntagResource"],
                Changes,
                Administrators,
            ),
            Operation::ListResourceTags => op(
                "ListResourceTags",
                &["kms:ListResourceTags"],
                Reads,
                Administrators,
            ),
            Operation::GenerateRandom => {
                op("GenerateRandom", &["kms:GenerateRandom"], Reads, NoKey)
            }
            Operation::CreateCustomKeyStore => op(
                "CreateCustomKeyStore",
                &["kms:CreateCustomKeyStore"],
                Creates,
                NoKey,
            ),
            Operation::DescribeCustomKeyStores => op(
                "DescribeCustomKeyStores",
                &["kms:DescribeCustomKeyStores"],
                Reads,
                NoKey,
            ),
            Operation::ConnectCustomKeyStore => op(
                "ConnectCustomKeyStore",
                &["kms:ConnectCustomKeyStore"],
                Changes,
                NoKey,
            ),
            Operation::DisconnectCustomKeyStore => op(
                "DisconnectCustomKeyStore",
                &["kms:DisconnectCustomKeyStore"],
                Changes,
                NoKey,
            ),
            Operation::UpdateCustomKeyStore => op(
                "UpdateCustomKeyStore",
                &["kms:UpdateCustomKeyStore"],
                Changes,
                NoKey,
            ),
            Operation::DeleteCustomKeyStore => op(
                "DeleteCustomKeyStore",
                &["kms:DeleteCustomKeyStore"],
                Changes,
                NoKey,
            ),
            Operation::CreateGrant => {
                op("CreateGrant", &["kms:CreateGrant"], Changes, Administrators)
            }
            Operation::ListGrants => op("ListGrants", &["kms:ListGrants"], Reads, Administrators),
            Operation::ListRetirableGrants => op(
                "ListRetirableGrants",
                &["kms:ListRetirableGrants"],
                Reads,
                NoKey,
            ),
            Operation::RetireGrant => {
                op("RetireGrant", &["kms:RetireGrant"], Changes, GrantParties)
            }
            Operation::RevokeGrant => {
                op("RevokeGrant", &["kms:RevokeGrant"], Changes, Administrators)
            }
            Operation::ReplicateKey => op(
                "ReplicateKey",
                &["kms:ReplicateKey"],
                Creates,
                Administrators,
            ),
            Operation::UpdatePrimaryRegion => op(
                "UpdatePrimaryRegion",
                &["kms:UpdatePrimaryRegion"],
                Changes,
                Administrators,
            ),
        }
    }

    /// The AWS name, as in `X-Amz-Target` and the audit log.
    pub const fn name(self) -> &'static str {
        self.spec().name
    }

    /// The operation of an AWS name (case-sensitive, as AWS is).
    pub fn from_name(name: &str) -> Option<Operation> {
        Operation::ALL.iter().copied().find(|op| op.name() == name)
    }

    /// The IAM action a key policy must allow. For ReEncrypt, which needs one
    /// action on each key, see [`RE_ENCRYPT_FROM`] and [`RE_ENCRYPT_TO`].
    pub const fn iam_action(self) -> &'static str {
        self.spec().iam_actions[0]
    }

    pub const fn iam_actions(self) -> &'static [&'static str] {
        self.spec().iam_actions
    }

    pub const fn effect(self) -> Effect {
        self.spec().effect
    }

    /// Whether the operation changes the store (creating included).
    pub fn changes_state(self) -> bool {
        self.effect() != Effect::Reads
    }

    pub const fn holder(self) -> Holder {
        self.spec().holder
    }
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{ADMIN_ACTIONS, USER_ACTIONS, action_matches};

    #[test]
    fn names_round_trip_and_are_unique() {
        for &op in Operation::ALL {
            assert_eq!(Operation::from_name(op.name()), Some(op));
            assert_eq!(format!("{op:?}"), op.name(), "variant and AWS name differ");
        }
        assert_eq!(Operation::from_name("createKey"), None);
        assert_eq!(Operation::from_name(""), None);
    }

    #[test]
    fn iam_actions_are_kms_actions_named_after_the_operation() {
        for &op in Operation::ALL {
            for action in op.iam_actions() {
                assert!(
                    action.starts_with(&format!("kms:{}", op.name())),
                    "{op}: {action}"
                );
            }
        }
    }

    /// The default policy's wildcard lists grant each role exactly the
    /// operations this module says the role holds.
    #[test]
    fn default_policy_roles_match_the_holders() {
        let granted =
            |patterns: &[&str], action: &str| patterns.iter().any(|p| action_matches(p, action));
        // Operations on no key are outside key policies (the console's
        // wildcards happen to match some of them, kms:Create*).
        for &op in Operation::ALL
            .iter()
            .filter(|op| op.holder() != Holder::NoKey)
        {
            for action in op.iam_actions() {
                assert_eq!(
                    granted(ADMIN_ACTIONS, action),
                    op.holder().includes_administrators(),
                    "ADMIN_ACTIONS and {op} disagree on {action}"
                );
                assert_eq!(
                    granted(USER_ACTIONS, action),
                    op.holder().includes_users(),
                    "USER_ACTIONS and {op} disagree on {action}"
                );
            }
        }
    }
}
