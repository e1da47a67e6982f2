/* Where JSON values end, without building them (see jscan.h). */
#include "jscan.h"

size_t jscan_ws(const char *s, size_t i, size_t n)
{
	while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
		i++;
	return i;
}

size_t jscan_string_end(const char *s, size_t i, size_t n)
{
	for (i++; i < n; i++) {
		if (s[i] == '\\')
			i++;
		else if (s[i] == '"')
			return i + 1;
	}
	return 0;
}

size_t jscan_value_end(const char *s, size_t i, size_t n)
{
	if (i < n && s[i] == '"')
		return jscan_string_end(s, i, n);
	size_t depth = 0;
	for (; i < n; i++) {
		char ch = s[i];
		if (ch == '"') {
			size_t e = jscan_string_end(s, i, n);
			if (!e)
				return 0;
			i = e - 1;
		} else if (ch == '[' || ch == '{') {
			depth++;
		} else if (ch == ']' || ch == '}') {
			if (depth == 0)
				return i;
			if (--depth == 0)
				return i + 1;
		} else if (depth == 0 && (ch == ',' || ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r')) {
			return i;
		}
	}
	return depth == 0 ? i : 0;
}
