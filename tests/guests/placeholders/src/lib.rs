//! The well-behaved extension rebuilt against `narakim:extension@0.2.0`:
//! it takes its two secrets as credentials (placeholders only) and returns
//! JSON. Used by the injection tests and the invocation benchmark.

wit_bindgen::generate!({
    path: "../../../wit",
    world: "narakim:extension/extension@0.2.0",
    generate_all,
});

use narakim::extension0_2_0::credentials;
use narakim::extension0_2_0::log::{Level, log};
use narakim::extension0_2_0::types::{HeaderFormat, Injection, RequiredSecret};

struct Placeholders;

impl Guest for Placeholders {
    fn describe() -> Description {
        let header = |name: &str, format: &str| Injection {
            headers: vec![HeaderFormat { name: name.into(), format: format.into() }],
            path: false,
            query: false,
            body: false,
        };
        Description {
            name: "placeholders".into(),
            version: "0.2.0".into(),
            description: "Takes its two secrets as credentials and reports their placeholders' lengths".into(),
            required_secrets: vec![
                RequiredSecret {
                    name: "API_TOKEN".into(),
                    hosts: vec!["api.example.test".into()],
                    injection: header("authorization", "Bearer {}"),
                },
                RequiredSecret {
                    name: "APP_ID".into(),
                    hosts: vec!["api.example.test".into()],
                    injection: header("x-app-id", "{}"),
                },
            ],
            secret_fields: vec![],
            allowed_hosts: vec!["api.example.test".into()],
            host_fields: vec![],
        }
    }

    fn run(config: String, input: String) -> Result<String, String> {
        let token = credentials::get("API_TOKEN").map_err(|e| format!("{e:?}"))?.placeholder();
        let app = credentials::get("APP_ID").map_err(|e| format!("{e:?}"))?.placeholder();
        if config.contains("\"chatty\":true") {
            log(Level::Info, &format!("using token {token} for app {app}"));
            println!("stdout sees {token}");
        }
        Ok(format!(
            "{{\"token_len\":{},\"app_len\":{},\"input\":{input}}}",
            token.len(),
            app.len()
        ))
    }
}

export!(Placeholders);
