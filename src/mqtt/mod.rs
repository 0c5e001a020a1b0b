//! MQTT CONNECT parsing and CONNACK encoding: pure logic, no nginx types.
