//! Version 0.2.0 of `well-behaved`, for the registry's upgrade tests: the
//! same name, one more required secret, a changed host binding and a
//! different allowed host, so installing it over 0.1.0 has a diff to report.

wit_bindgen::generate!({
    path: "../../../wit",
    world: "narakim:extension/extension@0.1.0",
    generate_all,
});

use narakim::extension0_1_0::secrets;
use narakim::extension0_1_0::types::{RequiredSecret, SecretField};

struct WellBehavedV2;

impl Guest for WellBehavedV2 {
    fn describe() -> Description {
        Description {
            name: "well-behaved".into(),
            version: "0.2.0".into(),
            description: "Reads its three secrets and reports their lengths".into(),
            required_secrets: vec![
                RequiredSecret {
                    name: "API_TOKEN".into(),
                    hosts: vec!["api2.example.test".into()],
                },
                RequiredSecret {
                    name: "APP_ID".into(),
                    hosts: vec![],
                },
                RequiredSecret {
                    name: "SIGNING_KEY".into(),
                    hosts: vec!["api2.example.test".into()],
                },
            ],
            secret_fields: vec![SecretField {
                pointer: "/auth/secret".into(),
                hosts: vec![],
            }],
            allowed_hosts: vec!["api2.example.test".into()],
            host_fields: vec!["/callback_url".into()],
        }
    }

    fn run(_config: String, input: String) -> Result<String, String> {
        let token = secrets::get("API_TOKEN").map_err(|e| format!("{e:?}"))?;
        let app = secrets::get("APP_ID").map_err(|e| format!("{e:?}"))?;
        let key = secrets::get("SIGNING_KEY").map_err(|e| format!("{e:?}"))?;
        Ok(format!(
            "{{\"token_len\":{},\"app_len\":{},\"key_len\":{},\"input\":{input}}}",
            token.len(),
            app.len(),
            key.len()
        ))
    }
}

export!(WellBehavedV2);
