/* mixplot.c - the capability mixes as a horizontal stacked bar chart (SVG, opens in a browser). */
#include <stdio.h>
#include <string.h>

#include "archive.h"
#include "err.h"
#include "fsutil.h"
#include "mixfile.h"

/* Colour-blind-safe palette (Okabe-Ito), one per capability. */
static const char *const colours[CH_NCAP] = {"#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9"};

static void xml_text(FILE *f, const char *s) {
    for (; *s; s++) {
        switch (*s) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '"': fputs("&quot;", f); break;
        default: fputc(*s, f);
        }
    }
}

int ch_mix_plot_svg(const ch_mix *m, const char *path) {
    const int bar_h = 18, gap = 6, width = 520, top = 50;
    size_t longest = 0; /* the task labels sit left of the bars: ~7 px a character at 12 px */
    for (int i = 0; i < m->ntask; i++)
        if (strlen(m->tasks[i]) > longest) longest = strlen(m->tasks[i]);
    const int left = 20 + 7 * ((int)longest + 8);
    int height = top + m->ntask * (bar_h + gap) + 60;
    FILE *f;
    char tmp[4200];
    CH_TRY(ch_fs_open_tmp(path, &f, tmp, sizeof tmp));
    fprintf(f,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
            "font-family=\"sans-serif\" font-size=\"12\">\n"
            "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
            "<text x=\"%d\" y=\"22\" font-size=\"15\" font-weight=\"bold\">Capability mix per task</text>\n",
            left + (width > 5 * 125 ? width : 5 * 125) + 40, height, left);
    for (int i = 0; i < m->ntask; i++) {
        int y = top + i * (bar_h + gap);
        fputs("<g class=\"bar\">\n", f); /* one group per task: its label and five segments */
        fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">", left - 8, y + bar_h - 5);
        xml_text(f, m->tasks[i]);
        fprintf(f, " (n=%lld)</text>\n", (long long)m->count[i]);
        double x = 0;
        for (int c = 0; c < CH_NCAP; c++) {
            double w = m->mix[i * CH_NCAP + c] * width;
            fprintf(f,
                    "<rect x=\"%.2f\" y=\"%d\" width=\"%.2f\" height=\"%d\" fill=\"%s\">"
                    "<title>%s: %.3f</title></rect>\n",
                    left + x, y, w, bar_h, colours[c], ch_capability_names[c], m->mix[i * CH_NCAP + c]);
            x += w;
        }
        fputs("</g>\n", f);
    }
    int ly = top + m->ntask * (bar_h + gap) + 20;
    for (int c = 0; c < CH_NCAP; c++) {
        int lx = left + c * 125;
        fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"12\" height=\"12\" fill=\"%s\"/>"
                   "<text x=\"%d\" y=\"%d\">%s</text>\n",
                lx, ly, colours[c], lx + 16, ly + 10, ch_capability_names[c]);
    }
    for (int t = 0; t <= 4; t++)
        fprintf(f, "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\" fill=\"#555\">%.2f</text>\n",
                left + t * width / 4, top - 6, t / 4.0);
    fprintf(f, "</svg>\n");
    return ch_fs_commit(f, tmp, path);
}
