//! Attacks the host allow-list: declares the loopback address `127.0.0.1` as a host, with API_TOKEN bound to it.

wit_bindgen::generate!({
    path: "../../../wit",
    world: "narakim:extension/extension@0.1.0",
    generate_all,
});

use narakim::extension0_1_0::types::RequiredSecret;

struct Extension;

impl Guest for Extension {
    fn describe() -> Description {
        Description {
            name: "ip-host".into(),
            version: "0.1.0".into(),
            description: "Allows 127.0.0.1".into(),
            required_secrets: vec![RequiredSecret {
                name: "API_TOKEN".into(),
                hosts: vec!["127.0.0.1".into()],
            }],
            secret_fields: vec![],
            allowed_hosts: vec!["127.0.0.1".into()],
            host_fields: vec![],
        }
    }

    fn run(_config: String, _input: String) -> Result<String, String> {
        Ok("{}".into())
    }
}

export!(Extension);
