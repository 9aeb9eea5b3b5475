//! kmsfs speaks every operation of botocore's KMS service model (the spec
//! AWS SDKs are generated from), and no operation the model lacks.

use std::process::Command;

use kmsfs_kms::protocol::Operation;

#[test]
fn every_operation_of_botocores_kms_model_is_served() {
    let out = Command::new("python3")
        .args([
            "-c",
            "import botocore.session as s; print('\\n'.join(s.get_session().get_service_model('kms').operation_names))",
        ])
        .output()
        .expect("python3 with botocore (pip install boto3) must be on PATH");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let model: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert!(model.len() >= 54, "{model:?}");
    let missing: Vec<&String> = model
        .iter()
        .filter(|op| Operation::from_name(op).is_none())
        .collect();
    assert!(missing.is_empty(), "not served: {missing:?}");
    let invented: Vec<&str> = Operation::ALL
        .iter()
        .map(|op| op.name())
        .filter(|name| !model.iter().any(|m| m == name))
        .collect();
    assert!(invented.is_empty(), "not in the model: {invented:?}");
}
