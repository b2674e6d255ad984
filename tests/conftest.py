"""Test session set-up: fake 8 CPU devices before JAX is first used."""

import jax

jax.config.update("jax_num_cpu_devices", 8)
