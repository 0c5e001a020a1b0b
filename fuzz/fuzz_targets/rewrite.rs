//! Fuzzes the CONNECT rewrite: whatever the device sent and whatever values
//! the gateway sets, a rewrite either fails or yields a valid CONNECT that
//! differs from the device's in exactly the configured fields.
//!
//! Input layout:
//! * byte 0: which edits (bit 0 ClientId, bits 1-2 username keep/set/remove,
//!   bits 3-4 password keep/set/remove, bit 5 a User Property);
//! * byte 1: the length of the value bytes that follow (used, in turn, as
//!   the ClientId, username, password and the property's name and value);
//! * the rest: the device's first bytes.
//!
//! Checked: no panic; a plan writes exactly its length; the output parses
//! as a CONNECT of the same version, with the new or the old ClientId and
//! username as configured, the password present as configured (gone with
//! the username in 3.x), and the same Keep Alive, Clean Session, Will Topic
//! and Will flags.

#![no_main]

use libfuzzer_sys::fuzz_target;
use mqtt_core::packet::rewrite::{plan_rewrite, ConnectRewrite, FieldEdit};
use mqtt_core::packet::{parse_connect, Parsed, ProtocolLevel};

fn edit(bits: u8, value: &[u8]) -> FieldEdit<'_> {
    match bits & 0b11 {
        1 => FieldEdit::Set(value),
        2 => FieldEdit::Remove,
        _ => FieldEdit::Keep,
    }
}

fuzz_target!(|data: &[u8]| {
    let [choice, len, rest @ ..] = data else {
        return;
    };
    let (value, stream) = rest.split_at(usize::from(*len).min(rest.len()));
    let Parsed::Connect(connect) = parse_connect(stream, 64 * 1024) else {
        return;
    };
    let user = [(value, value)];
    let rewrite = ConnectRewrite {
        client_id: (choice & 1 != 0).then_some(value),
        username: edit(choice >> 1, value),
        password: edit(choice >> 3, value),
        user_properties: if choice & 0x20 != 0 { &user } else { &[] },
    };
    let Ok(plan) = plan_rewrite(stream, &connect, &rewrite, 64 * 1024) else {
        return;
    };
    let mut out = vec![0u8; plan.len()];
    assert_eq!(plan.write(&mut out), plan.len());
    let Parsed::Connect(new) = parse_connect(&out, usize::MAX) else {
        panic!("the rewrite is not a valid CONNECT: {out:02x?}");
    };
    assert_eq!(new.packet_len, out.len());
    assert_eq!(new.level, connect.level);
    assert_eq!(new.keep_alive, connect.keep_alive);
    assert_eq!(new.flags.clean_session(), connect.flags.clean_session());
    assert_eq!(new.will_topic, connect.will_topic);
    assert_eq!(new.flags.will_qos(), connect.flags.will_qos());
    assert_eq!(new.flags.will_retain(), connect.flags.will_retain());
    match rewrite.client_id {
        Some(id) => assert_eq!(new.client_id.as_bytes(), id),
        None => assert_eq!(new.client_id, connect.client_id),
    }
    let username = match rewrite.username {
        FieldEdit::Keep => connect.username.map(str::as_bytes),
        FieldEdit::Set(name) => Some(name),
        FieldEdit::Remove => None,
    };
    assert_eq!(new.username.map(str::as_bytes), username);
    let mut password = match rewrite.password {
        FieldEdit::Keep => connect.password_present,
        FieldEdit::Set(_) => true,
        FieldEdit::Remove => false,
    };
    if connect.level != ProtocolLevel::V5 && username.is_none() {
        password = false;
    }
    assert_eq!(new.password_present, password);
    if connect.level == ProtocolLevel::V5 {
        let added = new.properties.user_properties().count()
            - connect.properties.user_properties().count();
        assert_eq!(added, rewrite.user_properties.len());
    }
});
