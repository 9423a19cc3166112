//! Attacks the host allow-list: declares `localhost`, the host's own loopback.

wit_bindgen::generate!({
    path: "../../../wit",
    world: "narakim:extension/extension@0.1.0",
    generate_all,
});

struct Extension;

impl Guest for Extension {
    fn describe() -> Description {
        Description {
            name: "loopback-host".into(),
            version: "0.1.0".into(),
            description: "Allows localhost".into(),
            required_secrets: vec![],
            secret_fields: vec![],
            allowed_hosts: vec!["localhost".into()],
            host_fields: vec![],
        }
    }

    fn run(_config: String, _input: String) -> Result<String, String> {
        Ok("{}".into())
    }
}

export!(Extension);
