//! A minimal QMP client (QEMU's JSON machine protocol) over a unix socket, every read bounded.

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

pub struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Qmp {
    /// Connects (retrying while QEMU creates the socket), reads the greeting and leaves
    /// negotiation mode with `qmp_capabilities`.
    pub fn connect(socket: &Path, timeout: Duration) -> Result<Self> {
        let deadline = Instant::now() + timeout;
        let stream = loop {
            match UnixStream::connect(socket) {
                Ok(s) => break s,
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => {
                    return Err(e).with_context(|| {
                        format!(
                            "QMP socket {} did not open in {timeout:?}",
                            socket.display()
                        )
                    });
                }
            }
        };
        stream.set_read_timeout(Some(timeout))?;
        stream.set_write_timeout(Some(timeout))?;
        let mut qmp = Qmp {
            reader: BufReader::new(stream.try_clone()?),
            writer: stream,
        };
        let greeting = qmp.read_message()?;
        if greeting.get("QMP").is_none() {
            bail!("unexpected QMP greeting: {greeting}");
        }
        qmp.execute("qmp_capabilities", json!({}))?;
        Ok(qmp)
    }

    /// Runs one command and returns its `return` value; QMP errors become errors. Events that
    /// arrive in between are skipped.
    pub fn execute(&mut self, command: &str, arguments: Value) -> Result<Value> {
        let msg = json!({ "execute": command, "arguments": arguments });
        writeln!(self.writer, "{msg}").context("QMP write")?;
        self.writer.flush()?;
        loop {
            let reply = self.read_message()?;
            if let Some(ret) = reply.get("return") {
                return Ok(ret.clone());
            }
            if let Some(err) = reply.get("error") {
                bail!("QMP {command} failed: {err}");
            }
        }
    }

    fn read_message(&mut self) -> Result<Value> {
        let mut line = String::new();
        let n = self
            .reader
            .read_line(&mut line)
            .context("QMP read (timed out or QEMU gone)")?;
        if n == 0 {
            bail!("QMP connection closed by QEMU");
        }
        serde_json::from_str(&line).with_context(|| format!("QMP sent bad JSON: {line}"))
    }
}
