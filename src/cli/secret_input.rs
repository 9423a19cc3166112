//! Reading a secret value without it ever touching argv, the screen or a
//! non-zeroizing buffer we own.

use std::io::{IsTerminal, Read};

use anyhow::{Result, bail};
use narakim::vault::{MAX_VALUE_LEN, SecretName, SecretValue};
use zeroize::Zeroizing;

/// Reads the value from stdin when it is not a terminal (one trailing
/// newline, as `echo` adds, is dropped), otherwise asks twice at a hidden
/// prompt.
pub fn read_value(name: &SecretName) -> Result<SecretValue> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        return prompt_twice(name);
    }
    // Read one byte past the largest value (plus a CRLF) to detect excess
    // without reading an unbounded stream.
    let mut buf = Zeroizing::new(Vec::with_capacity(MAX_VALUE_LEN + 3));
    stdin
        .lock()
        .take(MAX_VALUE_LEN as u64 + 3)
        .read_to_end(&mut buf)?;
    if buf.len() > MAX_VALUE_LEN + 2 {
        bail!(
            "the value on stdin is more than {MAX_VALUE_LEN} bytes; secrets may be at most {MAX_VALUE_LEN} bytes (64 KiB)"
        );
    }
    if buf.is_empty() {
        bail!(
            "stdin was empty: pipe the value in, for example `printf %s \"$VALUE\" | narakim secret set {name} --bot BOT`"
        );
    }
    let len = buf.len();
    if buf.ends_with(b"\r\n") {
        buf.truncate(len - 2);
    } else if buf.ends_with(b"\n") {
        buf.truncate(len - 1);
    }
    Ok(SecretValue::from_bytes(std::mem::take(&mut *buf))?)
}

fn prompt_twice(name: &SecretName) -> Result<SecretValue> {
    let first = Zeroizing::new(rpassword::prompt_password(format!(
        "Value for {name} (input hidden): "
    ))?);
    let second = Zeroizing::new(rpassword::prompt_password(format!(
        "Repeat the value for {name}: "
    ))?);
    let value = SecretValue::new(first.to_string())?;
    if !value.matches(second.as_bytes()) {
        bail!("the two values typed for {name} differ; nothing was saved. Run the command again");
    }
    Ok(value)
}
