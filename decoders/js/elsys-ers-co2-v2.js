// Elsys ERS CO2, legacy TTN v2 style: Decoder(bytes, port) returns the object itself.
// Written for gateway-agent from FORMATS.md 5.2 / 6.2 (type records, big-endian); handles the
// types an ERS CO2 sends and stops at any other. Suggested field_map: temperature ->
// temperature_c, humidity -> humidity_pct, co2 -> co2_ppm, vdd -> {name = "battery_v",
// scale = 0.001}; light and motion stay extras.
function Decoder(bytes, port) {
  var obj = {};
  var i = 0;
  function u16(k) { return (bytes[k] << 8) | bytes[k + 1]; }
  function s16(k) { var v = u16(k); return v > 0x7fff ? v - 0x10000 : v; }
  var SIZES = { 1: 2, 2: 1, 4: 2, 5: 1, 6: 2, 7: 2 };
  while (i < bytes.length) {
    var type = bytes[i];
    var size = SIZES[type];
    if (size === undefined) {
      obj.truncated = true;
      break;
    }
    if (i + 1 + size > bytes.length) {
      throw new Error("type " + type + " cut short");
    }
    var k = i + 1;
    if (type === 1) obj.temperature = s16(k) / 10;
    else if (type === 2) obj.humidity = bytes[k];
    else if (type === 4) obj.light = u16(k);
    else if (type === 5) obj.motion = bytes[k];
    else if (type === 6) obj.co2 = u16(k);
    else if (type === 7) obj.vdd = u16(k);
    i = k + size;
  }
  return obj;
}
