//! Handlers of tags, the smaller key operations, GenerateRandom and the
//! custom key stores (kmsfs issue 12).

use super::Handler;
use crate::error::Result;
use crate::local::LocalKms;
use crate::paging::{Limits, PageRequest};
use crate::policy::Caller;
use crate::protocol::*;

impl Handler for TagResourceRequest {
    fn handle(self, kms: &LocalKms, caller: &Caller) -> Result<Empty> {
        let tags: Vec<(String, String)> = self
            .tags
            .into_iter()
            .map(|t| (t.tag_key, t.tag_value))
            .collect();
        kms.tag_resource(caller, &self.key_id, &tags)?;
        Ok(Empty {})
    }
}

impl Handler for UntagResourceRequest {
    fn handle(self, kms: &LocalKms, caller: &Caller) -> Result<Empty> {
        kms.untag_resource(caller, &self.key_id, &self.tag_keys)?;
        Ok(Empty {})
    }
}

impl Handler for ListResourceTagsRequest {
    fn handle(self, kms: &LocalKms, caller: &Caller) -> Result<ListResourceTagsResponse> {
        let paging = PageRequest::new(
            Operation::ListResourceTags,
            self.limit,
            self.marker.as_deref(),
            Limits::TAGS,
        )?;
        let page = paging.page(kms.list_resource_tags(caller, &self.key_id)?, |t| {
            t.key.clone()
        });
        Ok(ListResourceTagsResponse {
            truncated: page.truncated(),
            tags: page
                .items
                .into_iter()
                .map(|t| Tag {
                    tag_key: t.key,
                    tag_value: t.value,
                })
                .collect(),
            next_marker: page.next_marker,
        })
    }
}

impl Handler for UpdateKeyDescriptionRequest {
    fn handle(self, kms: &LocalKms, caller: &Caller) -> Result<Empty> {
        kms.update_key_description(caller, &self.key_id, &self.description)?;
        Ok(Empty {})
    }
}

impl Handler for ListKeyPoliciesRequest {
    fn handle(self, kms: &LocalKms, caller: &Caller) -> Result<ListKeyPoliciesResponse> {
        let paging = PageRequest::new(
            Operation::ListKeyPolicies,
            self.limit,
            self.marker.as_deref(),
            Limits::STANDARD,
        )?;
        let page = paging.page(kms.list_key_policies(caller, &self.key_id)?, String::clone);
        Ok(ListKeyPoliciesResponse {
            truncated: page.truncated(),
            policy_names: page.items,
            next_marker: page.next_marker,
        })
    }
}

impl Handler for GetKeyLastUsageRequest {
    fn handle(self, kms: &LocalKms, caller: &Caller) -> Result<GetKeyLastUsageResponse> {
        let u = kms.get_key_last_usage(caller, &self.key_id)?;
        Ok(GetKeyLastUsageResponse {
            key_id: u.arn,
            key_last_usage: u.last.map(|l| KeyLastUsage {
                operation: Some(l.operation),
                timestamp: Some(EpochSeconds(l.when)),
                cloud_trail_event_id: None,
                kms_request_id: None,
            }),
            tracking_start_date: Some(EpochSeconds(u.tracking_start)),
            key_creation_date: Some(EpochSeconds(u.creation_date)),
        })
    }
}

impl Handler for DeleteImportedKeyMaterialRequest {
    fn handle(self, kms: &LocalKms, caller: &Caller) -> Result<DeleteImportedKeyMaterialResponse> {
        let arn = kms.delete_imported_key_material(
            caller,
            &self.key_id,
            self.key_material_id.as_deref(),
        )?;
        Ok(DeleteImportedKeyMaterialResponse {
            key_id: Some(arn),
            key_material_id: None,
        })
    }
}

impl Handler for GenerateRandomRequest {
    fn handle(self, kms: &LocalKms, caller: &Caller) -> Result<GenerateRandomResponse> {
        let bytes = kms.generate_random(
            caller,
            self.number_of_bytes,
            self.custom_key_store_id.as_deref(),
            self.recipient.is_some(),
        )?;
        Ok(GenerateRandomResponse {
            plaintext: bytes.into(),
        })
    }
}

impl Handler for CreateCustomKeyStoreRequest {
    fn handle(self, kms: &LocalKms, caller: &Caller) -> Result<CreateCustomKeyStoreResponse> {
        let id = kms.create_custom_key_store(
            caller,
            &self.custom_key_store_name,
            self.custom_key_store_type.as_deref(),
        )?;
        Ok(CreateCustomKeyStoreResponse {
            custom_key_store_id: id,
        })
    }
}

impl Handler for DescribeCustomKeyStoresRequest {
    fn handle(self, kms: &LocalKms, caller: &Caller) -> Result<DescribeCustomKeyStoresResponse> {
        let paging = PageRequest::new(
            Operation::DescribeCustomKeyStores,
            self.limit,
            self.marker.as_deref(),
            Limits::STANDARD,
        )?;
        let stores = kms.describe_custom_key_stores(
            caller,
            self.custom_key_store_id.as_deref(),
            self.custom_key_store_name.as_deref(),
        )?;
        let page = paging.page(stores, |()| String::new());
        Ok(DescribeCustomKeyStoresResponse {
            truncated: page.truncated(),
            custom_key_stores: vec![],
            next_marker: page.next_marker,
        })
    }
}

/// The store operations that can only name a store that does not exist.
macro_rules! store_handler {
    ($($request:ident),+) => {$(
        impl Handler for $request {
            fn handle(self, kms: &LocalKms, caller: &Caller) -> Result<Empty> {
                kms.custom_key_store_call(caller, Self::OPERATION, &self.custom_key_store_id)?;
                Ok(Empty {})
            }
        }
    )+};
}

store_handler!(
    ConnectCustomKeyStoreRequest,
    DisconnectCustomKeyStoreRequest,
    UpdateCustomKeyStoreRequest,
    DeleteCustomKeyStoreRequest
);
