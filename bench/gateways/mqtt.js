// MQTT CONNECT preread for nginx stream with njs: gateway (c) of the
// benchmarks. Written for this benchmark after the approach of the 2017
// NGINX Plus recipe (an njs js_preread handler reads the CONNECT, extracts
// the ClientId and puts it in a variable that `hash ... consistent` uses),
// plus the CN check this module's `mqtt_client_id_match cn` does.
//
//   js_import mqtt from mqtt.js;
//   js_var $mqtt_cid;
//   server { js_preread mqtt.preread;    ... }   # ClientId only
//   server { js_preread mqtt.preread_cn; ... }   # ClientId == certificate CN
//
// njs 0.7.9 (Debian 12): in the preread phase each `upload` callback gets
// the whole preread buffer so far (a byte string), not just the new bytes.

// Returns the ClientId (a byte string), null if more bytes are needed, or
// false for anything that is not a well-formed CONNECT prefix.
function clientId(b) {
    var n = b.length;
    if (n < 1) return null;
    if ((b.charCodeAt(0) & 0xf0) != 0x10) return false;
    // Remaining length: 1-4 bytes, 7 bits each.
    var rem = 0, mul = 1, p = 1, c;
    do {
        if (p >= n) return null;
        if (p > 4) return false;
        c = b.charCodeAt(p++);
        rem += (c & 0x7f) * mul;
        mul *= 128;
    } while (c & 0x80);
    var end = p + rem;
    if (n < end) return null;       // wait for the whole CONNECT
    // Variable header: protocol name, level, flags, keep-alive.
    if (p + 2 > end) return false;
    var plen = (b.charCodeAt(p) << 8) | b.charCodeAt(p + 1);
    p += 2 + plen;
    if (p + 4 > end) return false;
    var level = b.charCodeAt(p);
    p += 4;
    if (level == 5) {               // properties: length-prefixed, skipped
        var plen5 = 0, m5 = 1;
        do {
            if (p >= end) return false;
            c = b.charCodeAt(p++);
            plen5 += (c & 0x7f) * m5;
            m5 *= 128;
        } while (c & 0x80);
        p += plen5;
    }
    if (p + 2 > end) return false;
    var idlen = (b.charCodeAt(p) << 8) | b.charCodeAt(p + 1);
    p += 2;
    if (p + idlen > end) return false;
    return b.substring(p, p + idlen);
}

// The CN of an RFC 2253 subject as nginx prints it ("CN=x,O=y").
function subjectCn(dn) {
    var m = /(?:^|,)CN=((?:\\.|[^,\\])*)/.exec(dn);
    return m ? m[1] : null;
}

function prereadWith(s, checkCn) {
    s.on('upload', function (data, flags) {
        var id = clientId(data);
        if (id === null) {
            if (flags.last) s.deny();
            return;
        }
        if (id === false) {
            s.deny();
            return;
        }
        if (checkCn && subjectCn(s.variables.ssl_client_s_dn || '') !== id) {
            s.deny();
            return;
        }
        s.variables.mqtt_cid = id;
        s.off('upload');
        s.done();
    });
}

function preread(s) { prereadWith(s, false); }
function preread_cn(s) { prereadWith(s, true); }

export default { preread, preread_cn };
