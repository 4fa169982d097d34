/* SPDX-License-Identifier: Apache-2.0 */
/*
 * fuzz-scenario.c — the scenario loader on arbitrary input: YAML parsing,
 * field validation, the error line locator and object construction must
 * never crash, leak or read out of bounds, whatever the document says.
 * Each input gets a fresh store on a fake clock (no controllers: they only
 * see what the loader stored, which the API accepts anyway).
 */
#include <stdint.h>

#include "meshroll/time-util.h"
#include "scenario.h"
#include "store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        MrFakeClock fake;
        SimClock clock;
        SimStore *store = NULL;
        SimFaults faults;
        MrError err = {};

        if (size > 64 * 1024) /* large inputs only slow the fuzzer down */
                return 0;
        mr_fake_clock_init(&fake, USEC_PER_SEC, 1767225600 * USEC_PER_SEC);
        sim_clock_init(&clock, &fake.clock, 1.0);
        if (sim_store_new(&clock, -1, &store) < 0)
                return 0;
        (void)sim_scenario_load_data(store, (const char *)data, size, "fuzz.yaml", &faults, &err);
        sim_store_free(store);
        return 0;
}
