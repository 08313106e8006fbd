//! A minimal JSON scanner that lists every object key path of a raw body in
//! document order, so strict decoding can report duplicate fields (which a
//! parsed `serde_json::Value` has already collapsed).

/// Every object key of `body` as a dotted path (`spec.ports[0].port`), in
/// document order, including repeats. `None` when the body is not JSON.
pub fn key_paths(body: &[u8]) -> Option<Vec<String>> {
    let mut s = Scanner {
        b: body,
        i: 0,
        out: Vec::new(),
    };
    s.ws();
    s.value("")?;
    s.ws();
    if s.i != s.b.len() {
        return None;
    }
    Some(s.out)
}

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
    out: Vec<String>,
}

impl Scanner<'_> {
    fn ws(&mut self) {
        while self.i < self.b.len() && matches!(self.b[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn value(&mut self, path: &str) -> Option<()> {
        match self.peek()? {
            b'{' => self.object(path),
            b'[' => self.array(path),
            b'"' => self.string().map(|_| ()),
            _ => {
                // Literals and numbers: consume until a structural character.
                let start = self.i;
                while self.i < self.b.len()
                    && !matches!(
                        self.b[self.i],
                        b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'
                    )
                {
                    self.i += 1;
                }
                (self.i > start).then_some(())
            }
        }
    }

    fn string(&mut self) -> Option<String> {
        self.i += 1;
        let start = self.i;
        while self.i < self.b.len() {
            match self.b[self.i] {
                b'\\' => self.i += 2,
                b'"' => {
                    let raw = &self.b[start..self.i];
                    self.i += 1;
                    // Decode escapes through serde_json for exact key text.
                    let mut quoted = Vec::with_capacity(raw.len() + 2);
                    quoted.push(b'"');
                    quoted.extend_from_slice(raw);
                    quoted.push(b'"');
                    return serde_json::from_slice::<String>(&quoted).ok();
                }
                _ => self.i += 1,
            }
        }
        None
    }

    fn object(&mut self, path: &str) -> Option<()> {
        self.i += 1;
        self.ws();
        if self.peek()? == b'}' {
            self.i += 1;
            return Some(());
        }
        loop {
            self.ws();
            if self.peek()? != b'"' {
                return None;
            }
            let key = self.string()?;
            let child = if path.is_empty() {
                key
            } else {
                format!("{path}.{key}")
            };
            self.out.push(child.clone());
            self.ws();
            if self.peek()? != b':' {
                return None;
            }
            self.i += 1;
            self.ws();
            self.value(&child)?;
            self.ws();
            match self.peek()? {
                b',' => self.i += 1,
                b'}' => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    fn array(&mut self, path: &str) -> Option<()> {
        self.i += 1;
        self.ws();
        if self.peek()? == b']' {
            self.i += 1;
            return Some(());
        }
        let mut idx = 0;
        loop {
            self.ws();
            self.value(&format!("{path}[{idx}]"))?;
            idx += 1;
            self.ws();
            match self.peek()? {
                b',' => self.i += 1,
                b']' => {
                    self.i += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn lists_keys_in_order_with_repeats() {
        let body = br#"{"a": 1, "spec": {"ports": [{"port": 80, "port": 81}], "x\"y": null}, "a": [true, "s"]}"#;
        assert_eq!(
            key_paths(body).unwrap(),
            vec![
                "a",
                "spec",
                "spec.ports",
                "spec.ports[0].port",
                "spec.ports[0].port",
                "spec.x\"y",
                "a"
            ]
        );
        assert!(key_paths(b"{\"a\": }").is_none());
        assert!(key_paths(b"{} x").is_none());
    }
}
