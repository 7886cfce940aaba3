/*
 * html.c - the little HTML both report pages need: escaping (every text
 * that comes from a log or rules file goes through aud_html_esc, so a
 * tenant, rule or tool name cannot inject markup) and a bar chart drawn
 * as inline SVG (no script, nothing fetched).
 */
#include "audit/aud.h"

#include <string.h>

void
aud_html_esc(FILE *f, const char *s)
{
	for (; s != NULL && *s != '\0'; s++) {
		switch (*s) {
		case '<': fputs("&lt;", f); break;
		case '>': fputs("&gt;", f); break;
		case '&': fputs("&amp;", f); break;
		case '"': fputs("&quot;", f); break;
		case '\'': fputs("&#39;", f); break;
		default:
			if ((unsigned char)*s < 0x20 && *s != '\n' && *s != '\t')
				fputc('?', f);
			else
				fputc(*s, f);
		}
	}
}

void
aud_html_bars(FILE *f, const char *title, const char *const *labels,
    const long long *values, size_t n)
{
	long long max = 1;
	const int row = 22, lw = 220, bw = 360;

	for (size_t i = 0; i < n; i++)
		if (values[i] > max)
			max = values[i];
	fprintf(f, "<figure><figcaption>");
	aud_html_esc(f, title);
	fprintf(f, "</figcaption>\n<svg xmlns=\"http://www.w3.org/2000/svg\" "
	    "width=\"%d\" height=\"%zu\" role=\"img\">\n", lw + bw + 70,
	    n * row + 4);
	for (size_t i = 0; i < n; i++) {
		int w = (int)(values[i] * bw / max);

		fprintf(f, "<text x=\"%d\" y=\"%zu\" text-anchor=\"end\" "
		    "class=\"lbl\">", lw - 6, i * row + 16);
		aud_html_esc(f, labels[i]);
		fprintf(f, "</text><rect x=\"%d\" y=\"%zu\" width=\"%d\" "
		    "height=\"16\" class=\"bar\"/><text x=\"%d\" y=\"%zu\" "
		    "class=\"val\">%lld</text>\n", lw, i * row + 3, w > 0 ? w : 1,
		    lw + w + 6, i * row + 16, values[i]);
	}
	fprintf(f, "</svg></figure>\n");
}
