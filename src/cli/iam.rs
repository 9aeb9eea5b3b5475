//! `kmsfs iam …`: users, groups and access keys of the key store's small IAM,
//! with the names, flags and JSON output of `aws iam`. It works on the
//! embedded store directly (who can open the store administers its IAM).

use std::path::PathBuf;
use std::sync::Arc;

use clap::{Args, Subcommand};
use serde_json::{Map, Value, json};

use super::{CliError, open_local_kms};
use crate::awscli::{self, OutputFormat};
use kmsfs_kms::iam::IamData;
use kmsfs_kms::iam::PolicyHolder;
use kmsfs_kms::model::Timestamp;

#[derive(Debug, Args)]
pub(crate) struct IamArgs {
    /// Output format, as the AWS CLI's --output.
    #[arg(long, global = true, default_value = "json")]
    pub output: OutputFormat,
    /// A JMESPath-style query applied to the response (AWS CLI --query).
    #[arg(long, global = true)]
    pub query: Option<String>,
    #[command(subcommand)]
    pub command: IamCommand,
}

#[derive(Debug, Subcommand)]
pub(crate) enum IamCommand {
    /// Creates an IAM user. If a local Unix user of the same name exists,
    /// the IAM user stands for it (signed requests act as its uid and
    /// groups) unless --no-unix-user; otherwise it is an IAM principal only,
    /// named by its ARN.
    CreateUser {
        #[arg(long)]
        user_name: String,
        /// Never tie the user to a Unix account, even one of its name.
        #[arg(long)]
        no_unix_user: bool,
    },
    /// Deletes a user (delete its access keys first).
    DeleteUser {
        #[arg(long)]
        user_name: String,
    },
    /// Lists the users.
    ListUsers,
    /// Creates a group; key policies name it in `Group` principals.
    CreateGroup {
        #[arg(long)]
        group_name: String,
    },
    /// Deletes a group.
    DeleteGroup {
        #[arg(long)]
        group_name: String,
    },
    /// Lists the groups.
    ListGroups,
    /// Shows a group and its members.
    GetGroup {
        #[arg(long)]
        group_name: String,
    },
    /// Adds a user to a group.
    AddUserToGroup {
        #[arg(long)]
        group_name: String,
        #[arg(long)]
        user_name: String,
    },
    /// Removes a user from a group.
    RemoveUserFromGroup {
        #[arg(long)]
        group_name: String,
        #[arg(long)]
        user_name: String,
    },
    /// Creates an access key (AKIA… id and secret) for a user; the secret is shown only now.
    CreateAccessKey {
        #[arg(long)]
        user_name: String,
    },
    /// Deletes an access key.
    DeleteAccessKey {
        #[arg(long)]
        access_key_id: String,
        #[arg(long)]
        user_name: Option<String>,
    },
    /// Activates or deactivates an access key.
    UpdateAccessKey {
        #[arg(long)]
        access_key_id: String,
        /// Active or Inactive.
        #[arg(long)]
        status: String,
        #[arg(long)]
        user_name: Option<String>,
    },
    /// Lists a user's access keys (never their secrets).
    ListAccessKeys {
        #[arg(long)]
        user_name: String,
    },
    /// Adds or replaces an inline identity policy of a user (kms: actions).
    PutUserPolicy {
        #[arg(long)]
        user_name: String,
        #[arg(long)]
        policy_name: String,
        /// The policy JSON, or file://PATH.
        #[arg(long)]
        policy_document: String,
    },
    /// Shows an inline policy of a user.
    GetUserPolicy {
        #[arg(long)]
        user_name: String,
        #[arg(long)]
        policy_name: String,
    },
    /// Lists the inline policies of a user.
    ListUserPolicies {
        #[arg(long)]
        user_name: String,
    },
    /// Deletes an inline policy of a user.
    DeleteUserPolicy {
        #[arg(long)]
        user_name: String,
        #[arg(long)]
        policy_name: String,
    },
    /// Adds or replaces an inline identity policy of a group; its members get it.
    PutGroupPolicy {
        #[arg(long)]
        group_name: String,
        #[arg(long)]
        policy_name: String,
        /// The policy JSON, or file://PATH.
        #[arg(long)]
        policy_document: String,
    },
    /// Shows an inline policy of a group.
    GetGroupPolicy {
        #[arg(long)]
        group_name: String,
        #[arg(long)]
        policy_name: String,
    },
    /// Lists the inline policies of a group.
    ListGroupPolicies {
        #[arg(long)]
        group_name: String,
    },
    /// Deletes an inline policy of a group.
    DeleteGroupPolicy {
        #[arg(long)]
        group_name: String,
        #[arg(long)]
        policy_name: String,
    },
}

/// What a policy subcommand does, for users and groups alike.
enum PolicyCall<'a> {
    Put { name: &'a str, document: &'a str },
    Get { name: &'a str },
    List,
    Delete { name: &'a str },
}

/// Runs one inline-policy subcommand on user or group `holder`, answering
/// as IAM does (the document as JSON, as the AWS CLI prints it decoded).
fn policy_call(
    kms: &kmsfs_kms::local::LocalKms,
    kind: PolicyHolder,
    holder: &str,
    call: PolicyCall,
) -> Result<Value, CliError> {
    let (op, member) = match (kind, &call) {
        (PolicyHolder::User, PolicyCall::Put { .. }) => ("PutUserPolicy", "UserName"),
        (PolicyHolder::User, PolicyCall::Get { .. }) => ("GetUserPolicy", "UserName"),
        (PolicyHolder::User, PolicyCall::List) => ("ListUserPolicies", "UserName"),
        (PolicyHolder::User, PolicyCall::Delete { .. }) => ("DeleteUserPolicy", "UserName"),
        (PolicyHolder::Group, PolicyCall::Put { .. }) => ("PutGroupPolicy", "GroupName"),
        (PolicyHolder::Group, PolicyCall::Get { .. }) => ("GetGroupPolicy", "GroupName"),
        (PolicyHolder::Group, PolicyCall::List) => ("ListGroupPolicies", "GroupName"),
        (PolicyHolder::Group, PolicyCall::Delete { .. }) => ("DeleteGroupPolicy", "GroupName"),
    };
    let out = match call {
        PolicyCall::Put { name, document } => {
            let document = awscli::read_text_arg(document)
                .map_err(|e| CliError::Usage(format!("--policy-document: {e}")))?;
            kms.iam_update(|iam, _| iam.put_policy(kind, holder, name, &document))
                .map(|()| json!({}))
        }
        PolicyCall::Get { name } => kms
            .iam_read(|iam| iam.get_policy(kind, holder, name))
            .and_then(|r| r)
            .map(|doc| {
                let document: Value = serde_json::from_str(&doc).unwrap_or(Value::String(doc));
                json!({member: holder, "PolicyName": name, "PolicyDocument": document})
            }),
        PolicyCall::List => kms
            .iam_read(|iam| iam.list_policies(kind, holder))
            .and_then(|r| r)
            .map(|names| json!({"PolicyNames": names, "IsTruncated": false})),
        PolicyCall::Delete { name } => kms
            .iam_update(|iam, _| iam.delete_policy(kind, holder, name))
            .map(|()| json!({})),
    };
    out.map_err(service(op))
}

fn iso(t: Timestamp) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
}

fn user_json(account: &str, iam: &IamData, name: &str) -> Value {
    let u = &iam.users[name];
    json!({
        "Path": "/",
        "UserName": name,
        "UserId": u.user_id,
        "Arn": kmsfs_kms::iam::user_arn(account, name),
        "CreateDate": iso(u.created),
    })
}

fn group_json(account: &str, iam: &IamData, name: &str) -> Value {
    let g = &iam.groups[name];
    json!({
        "Path": "/",
        "GroupName": name,
        "GroupId": g.group_id,
        "Arn": format!("arn:aws:iam::{account}:group/{name}"),
        "CreateDate": iso(g.created),
    })
}

fn key_metadata(iam: &IamData, user: &str) -> Vec<Value> {
    iam.access_keys
        .iter()
        .filter(|(_, k)| k.user_name == user)
        .map(|(id, k)| {
            json!({
                "UserName": k.user_name,
                "AccessKeyId": id,
                "Status": k.status,
                "CreateDate": iso(k.created),
            })
        })
        .collect()
}

fn service(op: &'static str) -> impl Fn(kmsfs_kms::KmsError) -> CliError {
    move |e| CliError::Service(op, e)
}

pub(crate) fn run(args: &IamArgs, keystore: Option<PathBuf>) -> Result<(), CliError> {
    use IamCommand::*;
    let kms = open_local_kms(keystore, Arc::new(kmsfs_kms::clock::SystemClock))?;
    // ARNs name the store's account (KMSFS_ACCOUNT_ID when it was made).
    let (_, account) = kms.region_and_account().map_err(CliError::Kms)?;
    let read = |f: &dyn Fn(&IamData) -> Value| kms.iam_read(f).map_err(CliError::Kms);
    let user = PolicyHolder::User;
    let group = PolicyHolder::Group;
    let response: Value = match &args.command {
        PutUserPolicy {
            user_name,
            policy_name,
            policy_document,
        } => policy_call(
            &kms,
            user,
            user_name,
            PolicyCall::Put {
                name: policy_name,
                document: policy_document,
            },
        )?,
        GetUserPolicy {
            user_name,
            policy_name,
        } => policy_call(&kms, user, user_name, PolicyCall::Get { name: policy_name })?,
        ListUserPolicies { user_name } => policy_call(&kms, user, user_name, PolicyCall::List)?,
        DeleteUserPolicy {
            user_name,
            policy_name,
        } => policy_call(
            &kms,
            user,
            user_name,
            PolicyCall::Delete { name: policy_name },
        )?,
        PutGroupPolicy {
            group_name,
            policy_name,
            policy_document,
        } => policy_call(
            &kms,
            group,
            group_name,
            PolicyCall::Put {
                name: policy_name,
                document: policy_document,
            },
        )?,
        GetGroupPolicy {
            group_name,
            policy_name,
        } => policy_call(
            &kms,
            group,
            group_name,
            PolicyCall::Get { name: policy_name },
        )?,
        ListGroupPolicies { group_name } => policy_call(&kms, group, group_name, PolicyCall::List)?,
        DeleteGroupPolicy {
            group_name,
            policy_name,
        } => policy_call(
            &kms,
            group,
            group_name,
            PolicyCall::Delete { name: policy_name },
        )?,
        CreateUser {
            user_name,
            no_unix_user,
        } => kms
            .iam_update(|iam, now| {
                let link = if *no_unix_user {
                    kmsfs_kms::iam::UnixLink::Never
                } else {
                    kmsfs_kms::iam::UnixLink::IfExists
                };
                iam.create_user(user_name, now, link)?;
                Ok(json!({"User": user_json(&account, iam, user_name)}))
            })
            .map_err(service("CreateUser"))?,
        DeleteUser { user_name } => kms
            .iam_update(|iam, _| iam.delete_user(user_name).map(|_| json!({})))
            .map_err(service("DeleteUser"))?,
        ListUsers => read(&|iam| {
            let users: Vec<Value> = iam
                .users
                .keys()
                .map(|n| user_json(&account, iam, n))
                .collect();
            json!({"Users": users})
        })?,
        CreateGroup { group_name } => kms
            .iam_update(|iam, now| {
                iam.create_group(group_name, now)?;
                Ok(json!({"Group": group_json(&account, iam, group_name)}))
            })
            .map_err(service("CreateGroup"))?,
        DeleteGroup { group_name } => kms
            .iam_update(|iam, _| iam.delete_group(group_name).map(|_| json!({})))
            .map_err(service("DeleteGroup"))?,
        ListGroups => read(&|iam| {
            let groups: Vec<Value> = iam
                .groups
                .keys()
                .map(|n| group_json(&account, iam, n))
                .collect();
            json!({"Groups": groups})
        })?,
        GetGroup { group_name } => {
            let found = read(&|iam| {
                if !iam.groups.contains_key(group_name) {
                    return Value::Null;
                }
                let users: Vec<Value> = iam.groups[group_name]
                    .members
                    .iter()
                    .filter(|m| iam.users.contains_key(*m))
                    .map(|m| user_json(&account, iam, m))
                    .collect();
                json!({"Users": users, "Group": group_json(&account, iam, group_name), "IsTruncated": false})
            })?;
            if found.is_null() {
                return Err(CliError::Service(
                    "GetGroup",
                    kmsfs_kms::KmsError::NotFound(format!(
                        "The group with name {group_name} cannot be found."
                    )),
                ));
            }
            found
        }
        AddUserToGroup {
            group_name,
            user_name,
        } => kms
            .iam_update(|iam, _| {
                iam.add_user_to_group(group_name, user_name)
                    .map(|_| json!({}))
            })
            .map_err(service("AddUserToGroup"))?,
        RemoveUserFromGroup {
            group_name,
            user_name,
        } => kms
            .iam_update(|iam, _| {
                iam.remove_user_from_group(group_name, user_name)
                    .map(|_| json!({}))
            })
            .map_err(service("RemoveUserFromGroup"))?,
        CreateAccessKey { user_name } => kms
            .iam_update(|iam, now| {
                let (id, secret) = iam.create_access_key(user_name, now)?;
                Ok(json!({"AccessKey": {
                    "UserName": user_name,
                    "AccessKeyId": id,
                    "Status": "Active",
                    "SecretAccessKey": secret.as_str(),
                    "CreateDate": iso(now),
                }}))
            })
            .map_err(service("CreateAccessKey"))?,
        DeleteAccessKey {
            access_key_id,
            user_name,
        } => kms
            .iam_update(|iam, _| {
                iam.delete_access_key(access_key_id, user_name.as_deref())
                    .map(|_| json!({}))
            })
            .map_err(service("DeleteAccessKey"))?,
        UpdateAccessKey {
            access_key_id,
            status,
            user_name,
        } => kms
            .iam_update(|iam, _| {
                if let Some(u) = user_name
                    && iam
                        .access_keys
                        .get(access_key_id)
                        .is_some_and(|k| &k.user_name != u)
                {
                    return Err(kmsfs_kms::KmsError::NotFound(format!(
                        "The Access Key with id {access_key_id} cannot be found."
                    )));
                }
                iam.set_access_key_status(access_key_id, status)
                    .map(|_| json!({}))
            })
            .map_err(service("UpdateAccessKey"))?,
        ListAccessKeys { user_name } => {
            let out = read(&|iam| {
                if !iam.users.contains_key(user_name) {
                    return Value::Null;
                }
                json!({"AccessKeyMetadata": key_metadata(iam, user_name), "IsTruncated": false})
            })?;
            if out.is_null() {
                return Err(CliError::Service(
                    "ListAccessKeys",
                    kmsfs_kms::KmsError::NotFound(format!(
                        "The user with name {user_name} cannot be found."
                    )),
                ));
            }
            out
        }
    };
    print_response(response, args.output, args.query.as_deref())
}

/// Prints a response as the AWS CLI would: nothing for `{}`.
pub(crate) fn print_response(
    mut response: Value,
    output: OutputFormat,
    query: Option<&str>,
) -> Result<(), CliError> {
    if response.as_object().is_some_and(Map::is_empty) {
        return Ok(());
    }
    if let Some(q) = query {
        response = awscli::apply_query(&response, q).map_err(|e| CliError::Usage(e.to_string()))?;
    }
    print!("{}", awscli::render(&response, output));
    Ok(())
}
