"""Response bodies: what each API operation answers, as its OpenAPI document declares it."""
