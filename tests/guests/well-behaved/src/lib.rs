//! A well-behaved extension: reads the secrets it declared, logs, prints and
//! returns JSON. Used by the runtime tests and the invocation benchmark.

wit_bindgen::generate!({
    path: "../../../wit",
    world: "narakim:extension/extension@0.1.0",
    generate_all,
});

use narakim::extension0_1_0::log::{Level, log};
use narakim::extension0_1_0::secrets;
use narakim::extension0_1_0::types::{RequiredSecret, SecretField};

struct WellBehaved;

impl Guest for WellBehaved {
    fn describe() -> Description {
        Description {
            name: "well-behaved".into(),
            version: "0.1.0".into(),
            description: "Reads its two secrets and reports their lengths".into(),
            required_secrets: vec![
                RequiredSecret { name: "API_TOKEN".into(), hosts: vec!["api.example.test".into()] },
                RequiredSecret { name: "APP_ID".into(), hosts: vec![] },
            ],
            secret_fields: vec![SecretField { pointer: "/auth/secret".into(), hosts: vec![] }],
            allowed_hosts: vec!["api.example.test".into()],
            host_fields: vec![],
        }
    }

    fn run(config: String, input: String) -> Result<String, String> {
        let token = secrets::get("API_TOKEN").map_err(|e| format!("{e:?}"))?;
        let app = secrets::get("APP_ID").map_err(|e| format!("{e:?}"))?;
        // A config field may name one more secret (declared through secret-fields).
        let extra = config
            .split("\"secret\":\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .map(|name| secrets::get(name).map(|v| v.len()).map_err(|e| format!("{e:?}")))
            .transpose()?;
        if config.contains("\"chatty\":true") {
            log(Level::Info, &format!("using token {token} for app {app}"));
            println!("stdout sees {token}");
            eprintln!("stderr sees {app}");
        }
        Ok(format!(
            "{{\"token_len\":{},\"app_len\":{},\"extra_len\":{},\"input\":{input}}}",
            token.len(),
            app.len(),
            extra.map_or("null".to_string(), |n| n.to_string())
        ))
    }
}

export!(WellBehaved);
