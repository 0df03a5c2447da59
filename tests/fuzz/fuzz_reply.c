// libFuzzer target: the edge's success body from an upstream answer (edge/reply.c
// edge_reply_result): the "aigw" splice and the one-scan rename of the top-level
// "model". Whenever the input is a JSON object, the output must be one too, with
// "model" (when the input had a top-level string "model") equal to the winner's name.
#include <cJSON.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "reply.h"

int LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    Aigw__Result res = AIGW__RESULT__INIT;
    res.model = (char *) "winner-1";
    res.has_response_json = true;
    res.response_json.data = (uint8_t *) data;
    res.response_json.len = size;
    edge_reply_t r;
    if (edge_reply_result (&r, &res, CFG_POLICY_RACE, NULL))
        return 0;                       // out of memory
    //  The oracle holds for standard JSON; cJSON also lets raw control bytes and NULs
    //  through, and those bodies are passed on as they came (never crashing)
    bool standard = true;
    for (size_t i = 0; i < size; i++)
        if (data[i] < 0x20 && data[i] != ' ' && data[i] != '\t' && data[i] != '\r'
            && data[i] != '\n')
            standard = false;
    //  ... and it reads a bad \u escape by ending the string there (so its "model" is
    //  not the literal the edge sees): such bodies are not standard JSON either
    //  ... nor does JSON allow a raw control byte inside a string, and cJSON ends its
    //  C string at a \u0000: neither is a literal the oracle can compare
    bool in_str = false;
    for (size_t i = 0; standard && i < size; i++) {
        if (in_str && data[i] < 0x20)
            standard = false;
        else
        if (in_str && data[i] == '\\') {
            if (i + 5 < size && memcmp (data + i + 1, "u0000", 5) == 0)
                standard = false;
            i++;
        }
        else
        if (data[i] == '"')
            in_str = !in_str;
    }
    for (size_t i = 0; standard && i + 1 < size; i++)
        if (data[i] == '\\') {
            if (data[i + 1] == 'u')
                for (size_t k = 2; k < 6; k++)
                    standard &= i + k < size && strchr ("0123456789abcdefABCDEF", data[i + k])
                                && data[i + k];
            else
                standard &= data[i + 1] && strchr ("\"\\/bfnrt", data[i + 1]) != NULL;
            i++;
        }
    cJSON *in = standard ? cJSON_ParseWithLength ((const char *) data, size) : NULL;
    if (cJSON_IsObject (in) && r.status == 200) {
        cJSON *out = cJSON_ParseWithLength (r.body, r.len);
        if (!cJSON_IsObject (out))
            abort ();
        const cJSON *m = cJSON_GetObjectItemCaseSensitive (in, "model");
        const cJSON *om = cJSON_GetObjectItemCaseSensitive (out, "model");
        //  (a duplicate "model" key in the input: cJSON reads the first, so skip those)
        bool plain = cJSON_IsString (m);
        for (const char *p = plain ? m->valuestring : ""; *p; p++)
            plain &= (unsigned char) *p >= 0x20;   // raw control bytes: left as they came
        if (plain && !strstr (cJSON_GetStringValue (m), "model")
            && (!cJSON_IsString (om) || strcmp (om->valuestring, "winner-1") != 0)) {
            int keys = 0;
            const cJSON *it;
            cJSON_ArrayForEach (it, in)
                keys += strcmp (it->string, "model") == 0;
            if (keys == 1)
                abort ();
        }
        cJSON_Delete (out);
    }
    cJSON_Delete (in);
    edge_reply_reset (&r);
    return 0;
}
