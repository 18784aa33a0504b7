// Dragino LDDS20 (firmware 1.1.4), ChirpStack v4 style: decodeUplink({bytes, fPort, variables})
// returns {data}; a bad frame throws. Written for gateway-agent from FORMATS.md 6.12.
// variables.ds18b20_fitted = "true" keeps a 0x0000 probe word as 0.0 degC.
// Suggested field_map: battery_mv -> {name = "battery_v", scale = 0.001},
// liquid_level_mm -> level_mm.
function decodeUplink(input) {
  var b = input.bytes;
  if (input.fPort !== 2) {
    throw new Error("unknown fPort " + input.fPort);
  }
  if (b.length !== 8) {
    throw new Error("expected 8 bytes, got " + b.length);
  }
  var data = {
    battery_mv: ((b[0] << 8) | b[1]) & 0x3fff,
    interrupt: b[4] !== 0,
    sensor_detected: b[7] === 1
  };
  var distance = (b[2] << 8) | b[3];
  if (distance === 0) {
    data.sensor_absent = true;
  } else if (distance === 20) {
    data.invalid_reading = true;
  } else {
    data.liquid_level_mm = distance;
  }
  var probe = (b[5] << 8) | b[6];
  if (probe > 0x7fff) {
    probe -= 0x10000;
  }
  var fitted = input.variables && input.variables.ds18b20_fitted === "true";
  if (probe !== 0 || fitted) {
    data.ds18b20_temperature_c = probe / 10;
  }
  return { data: data };
}
