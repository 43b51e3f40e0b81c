/* Functions that are easy to misuse. Including this header turns any call to them into a
 * compile error (git's banned.h). Use snprintf and strtol with an end-pointer check instead. */
#ifndef SW_BANNED_H
#define SW_BANNED_H

#define SW_BANNED(func) sorry_##func##_is_a_banned_function

#undef strcpy
#define strcpy(x, y) SW_BANNED(strcpy)
#undef strcat
#define strcat(x, y) SW_BANNED(strcat)
#undef sprintf
#define sprintf(...) SW_BANNED(sprintf)
#undef strtok
#define strtok(x, y) SW_BANNED(strtok)
#undef gets
#define gets(x) SW_BANNED(gets)
#undef atoi
#define atoi(x) SW_BANNED(atoi)

#endif
