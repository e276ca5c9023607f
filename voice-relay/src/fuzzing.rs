pub fn relay_inputs(_data: &[u8]) {}
