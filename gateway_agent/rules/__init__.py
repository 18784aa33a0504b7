"""Edge rules. Pure: no IO, no clock (time passed in), no logging."""
