//! Custom key stores: kmsfs has none (no CloudHSM cluster, no external key
//! store proxy), so it answers as AWS does for an account without any:
//! an empty DescribeCustomKeyStores, CustomKeyStoreNotFoundException for
//! any store id or name, and UnsupportedOperationException for
//! CreateCustomKeyStore (docs/KMS.md, "Differences from AWS KMS"). Every
//! call is still audited.

use super::LocalKms;
use crate::error::{KmsError, Result};
use crate::policy::Caller;
use crate::protocol::Operation;

pub fn not_found(store: &str) -> KmsError {
    KmsError::CustomKeyStoreNotFound(format!(
        "Custom key store {store} does not exist: kmsfs has no custom key stores"
    ))
}

impl LocalKms {
    /// Connect, Disconnect, Update or Delete of the store `store_id`.
    pub fn custom_key_store_call(
        &self,
        caller: &Caller,
        op: Operation,
        store_id: &str,
    ) -> Result<()> {
        self.run(caller, op, None, None, |_| {
            self.account_level(caller, op)?;
            Err(not_found(store_id))
        })
    }

    pub fn create_custom_key_store(
        &self,
        caller: &Caller,
        name: &str,
        store_type: Option<&str>,
    ) -> Result<String> {
        let op = Operation::CreateCustomKeyStore;
        self.run(caller, op, None, None, |_| {
            self.account_level(caller, op)?;
            if name.is_empty() || name.chars().count() > 256 {
                return Err(KmsError::Validation(
                    "1 validation error detected: Value at 'customKeyStoreName' failed to satisfy constraint: Member must have length between 1 and 256".into(),
                ));
            }
            match store_type.unwrap_or("AWS_CLOUDHSM") {
                "AWS_CLOUDHSM" | "EXTERNAL_KEY_STORE" => {}
                other => {
                    return Err(KmsError::Validation(format!(
                        "1 validation error detected: Value '{other}' at 'customKeyStoreType' failed to satisfy constraint: Member must satisfy enum value set: [AWS_CLOUDHSM, EXTERNAL_KEY_STORE]"
                    )));
                }
            }
            Err(KmsError::UnsupportedOperation(format!(
                "Custom key store {name:?} cannot be created: kmsfs keeps every key in its own key store and supports neither CloudHSM nor external key stores"
            )))
        })
    }

    /// The custom key stores: none. Naming one (by id or name) is
    /// CustomKeyStoreNotFoundException, as AWS answers for an unknown one.
    pub fn describe_custom_key_stores(
        &self,
        caller: &Caller,
        store_id: Option<&str>,
        store_name: Option<&str>,
    ) -> Result<Vec<()>> {
        self.run(
            caller,
            Operation::DescribeCustomKeyStores,
            None,
            None,
            |_| {
                self.account_level(caller, Operation::DescribeCustomKeyStores)?;
                match store_id.or(store_name) {
                    Some(named) => Err(not_found(named)),
                    None => Ok(vec![]),
                }
            },
        )
    }
}
